// Monitor mode: `serve` on a host where the loop never ran (no desyncs, no state directory)
// still shows its running nixpkgs and age, reboot required, generations, the host's own
// upgrade unit (stand-in systemctl) and its flake inputs — with every collector succeeding.
import { spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { buildSystemGenerations, FIXTURE_DIR } from '../fixtures/exporter/build.js';
import { sample, startTestExporter, type StartedExporter, waitFor } from '../fixtures/exporter/start.js';
import { FAILED_UPGRADE_UNIT, makeSystemctl, NO_SYSTEMD, setSystemctlFailing } from '../fixtures/exporter/systemctl.js';
import { requireTools } from '../helpers/tools.js';

interface MonitorHost {
  dir: string;
  config: Config;
  systemctl: string;
  flakeLock: string;
}

let host: MonitorHost | undefined;
let exp: StartedExporter | undefined;
afterEach(async () => {
  await exp?.close();
  if (host) await rm(host.dir, { recursive: true, force: true });
  [exp, host] = [undefined, undefined];
});

/** A NixOS host that never ran the loop: its state directory does not exist. */
async function monitorHost(exporter: Record<string, unknown> = {}): Promise<MonitorHost> {
  const dir = await mkdtemp(join(tmpdir(), 'nixos-desync-monitor-'));
  const [profilesDir, runDir, storeDir] = ['profiles', 'run', 'store'].map((d) => join(dir, d)) as [string, string, string];
  await buildSystemGenerations({ profilesDir, runDir, storeDir });
  const systemctl = await makeSystemctl(join(dir, 'bin'), { 'nixos-upgrade.service': FAILED_UPGRADE_UNIT });
  const flakeLock = join(dir, 'etc-nixos', 'flake.lock');
  await mkdir(join(dir, 'etc-nixos'));
  await cp(join(FIXTURE_DIR, 'flake.lock'), flakeLock);
  const config = parseConfig({
    stateDir: join(dir, 'var-lib-nixos-desync'),
    profilesDir,
    runDir,
    exporter: { listenAddress: '127.0.0.1:0', upgradeUnit: 'nixos-upgrade.service', flakeLock, ...exporter },
  });
  return { dir, config, systemctl, flakeLock };
}

const scrape = async (e: StartedExporter): Promise<string> => (await fetch(`${e.url}metrics`)).text();

describe('serve on a host where the loop never ran', () => {
  it('exports the running nixpkgs, its age, reboot, generations, the upgrade unit and flake inputs, all collectors succeeding', async () => {
    host = await monitorHost();
    exp = await startTestExporter(host.config, { systemctl: host.systemctl });
    const t = await scrape(exp);
    for (const c of ['desyncs', 'runs', 'system', 'upgrade_unit', 'flake']) {
      expect(sample(t, `nixos_desync_collector_success{collector="${c}"}`), c).toBe(1);
    }
    // From <runDir>/current-system/nixos-version (25.11.20260102.abc1234).
    expect(sample(t, 'nixos_desync_system_nixpkgs_info{revision="abc1234",version="25.11"}')).toBe(1);
    expect(sample(t, 'nixos_desync_system_nixpkgs_timestamp_seconds')).toBe(Date.UTC(2026, 0, 2) / 1000);
    expect(sample(t, 'nixos_desync_system_reboot_required')).toBe(1);
    expect(sample(t, 'nixos_desync_system_generations')).toBe(3);
    expect(sample(t, 'nixos_desync_system_generation')).toBe(3);
    // nixos-upgrade.service's last run: 04:00:00 → 04:12:30.5, exit 1.
    expect(sample(t, 'nixos_desync_upgrade_unit_last_run_success{unit="nixos-upgrade.service"}')).toBe(0);
    expect(sample(t, 'nixos_desync_upgrade_unit_last_run_timestamp_seconds{unit="nixos-upgrade.service"}')).toBe(1768017600);
    expect(sample(t, 'nixos_desync_upgrade_unit_last_run_duration_seconds{unit="nixos-upgrade.service"}')).toBe(750.5);
    expect(sample(t, 'nixos_desync_upgrade_unit_running{unit="nixos-upgrade.service"}')).toBe(0);
    expect(sample(t, 'nixos_desync_flake_input_last_modified_timestamp_seconds{input="nixpkgs"}')).toBe(1767312000);
    expect(sample(t, 'nixos_desync_flake_input_last_modified_timestamp_seconds{input="home-manager"}')).toBe(1766000000);
    expect(sample(t, 'nixos_desync_flake_input_last_modified_timestamp_seconds{input="nixpkgs-synapse"}')).toBe(1764000000);
    // No loop: zero runs, no last-run verdict, no desync series.
    expect(sample(t, 'nixos_desync_runs_total{result="failure"}')).toBe(0);
    expect(t).not.toMatch(/^nixos_desync_last_run_success /m);
    expect(t).not.toMatch(/^nixos_desync_\w+\{desync=/m);
    expect(exp.logs.filter((l) => l.level === 'warn')).toEqual([]);
  });

  it.skipIf(!requireTools('promtool'))('promtool check metrics passes on that output', async () => {
    host = await monitorHost();
    exp = await startTestExporter(host.config, { systemctl: host.systemctl });
    const r = spawnSync('promtool', ['check', 'metrics'], { input: await scrape(exp), encoding: 'utf8', timeout: 20_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('picks the state directory up when the first run creates it', async () => {
    host = await monitorHost();
    exp = await startTestExporter(host.config, { systemctl: host.systemctl, model: { retryMs: 20 } });
    await mkdir(host.config.stateDir);
    await cp(join(FIXTURE_DIR, 'state.json'), join(host.config.stateDir, 'state.json'));
    const { value } = await waitFor(() => scrape(exp!), (t) => sample(t, 'nixos_desync_runs_total{result="success"}') !== 0, 3000);
    expect(sample(value, 'nixos_desync_collector_success{collector="runs"}')).toBe(1);
  });

  it('a state directory path that is a file is still a failing collector', async () => {
    host = await monitorHost();
    await writeFile(host.config.stateDir, 'not a directory');
    exp = await startTestExporter(host.config, { systemctl: host.systemctl });
    const t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="runs"}')).toBe(0);
    expect(sample(t, 'nixos_desync_collector_success{collector="system"}')).toBe(1);
  });
});

describe('the upgrade unit collector fails alone', () => {
  it('systemctl failing (no systemd): upgrade_unit 0, no unit series, the rest served', async () => {
    host = await monitorHost();
    await setSystemctlFailing(join(host.dir, 'bin'), NO_SYSTEMD);
    exp = await startTestExporter(host.config, { systemctl: host.systemctl });
    const res = await fetch(`${exp.url}metrics`);
    expect(res.status).toBe(200);
    const t = await res.text();
    expect(sample(t, 'nixos_desync_collector_success{collector="upgrade_unit"}')).toBe(0);
    expect(sample(t, 'nixos_desync_collector_success{collector="system"}')).toBe(1);
    expect(t).not.toMatch(/^nixos_desync_upgrade_unit_/m);
    expect(sample(t, 'nixos_desync_system_generations')).toBe(3);
    expect(exp.logs.some((l) => l.msg === 'collector failing' && String(l.error).includes('Host is down'))).toBe(true);
  });

  it('systemctl absent: the same', async () => {
    host = await monitorHost();
    exp = await startTestExporter(host.config, { systemctl: join(host.dir, 'no-such-systemctl') });
    const t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="upgrade_unit"}')).toBe(0);
    expect(sample(t, 'nixos_desync_collector_success{collector="flake"}')).toBe(1);
  });

  it('without exporter.upgradeUnit there is no upgrade_unit collector at all', async () => {
    host = await monitorHost({ upgradeUnit: null, flakeLock: null });
    exp = await startTestExporter(host.config, { systemctl: host.systemctl });
    const t = await scrape(exp);
    expect(t).not.toMatch(/collector="(upgrade_unit|flake)"/);
  });
});

describe('the flake lock is watched', () => {
  it('an updated lock shows at once; a deleted lock fails the flake collector; it recovers', async () => {
    host = await monitorHost();
    exp = await startTestExporter(host.config, { systemctl: host.systemctl });
    const lock = JSON.parse(await readFile(host.flakeLock, 'utf8')) as { nodes: Record<string, { locked: { lastModified: number } }> };
    lock.nodes.nixpkgs!.locked.lastModified = 1768000000;
    // As nix writes it: a new file renamed over the old one.
    await writeFile(`${host.flakeLock}.tmp`, JSON.stringify(lock));
    const { rename } = await import('node:fs/promises');
    await rename(`${host.flakeLock}.tmp`, host.flakeLock);
    await waitFor(() => scrape(exp!), (t) => sample(t, 'nixos_desync_flake_input_last_modified_timestamp_seconds{input="nixpkgs"}') === 1768000000);
    await rm(host.flakeLock);
    const { value } = await waitFor(() => scrape(exp!), (t) => sample(t, 'nixos_desync_collector_success{collector="flake"}') === 0);
    expect(value).not.toMatch(/^nixos_desync_flake_input_last_modified_timestamp_seconds\{/m);
    await writeFile(host.flakeLock, '{"nodes": {"root": {');
    await waitFor(() => exp!.model.flake?.error ?? '', (e) => /not a flake lock file/.test(e));
    await writeFile(host.flakeLock, JSON.stringify(lock));
    await waitFor(() => scrape(exp!), (t) => sample(t, 'nixos_desync_collector_success{collector="flake"}') === 1);
  });

  it("flake mode: the desyncs' own inputs are not repeated (their per-desync series describe them); the others are", async () => {
    host = await monitorHost();
    const config = parseConfig({
      flake: { path: join(host.dir, 'etc-nixos') },
      desyncs: { synapse: {} },
      stateDir: host.config.stateDir, profilesDir: host.config.profilesDir, runDir: host.config.runDir,
      exporter: { listenAddress: '127.0.0.1:0' },
    });
    // exporter.flakeLock defaults to <flake.path>/flake.lock in flake mode.
    expect(config.exporter.flakeLock).toBe(host.flakeLock);
    exp = await startTestExporter(config, { systemctl: host.systemctl });
    const t = await scrape(exp);
    expect(sample(t, 'nixos_desync_flake_input_last_modified_timestamp_seconds{input="nixpkgs"}')).toBe(1767312000);
    expect(sample(t, 'nixos_desync_flake_input_last_modified_timestamp_seconds{input="home-manager"}')).toBe(1766000000);
    expect(t).not.toMatch(/input="nixpkgs-synapse"/);
  });

  it('a running system whose nixos-version has no date takes the age from the lock', async () => {
    host = await monitorHost();
    await writeFile(join(host.dir, 'store', 'sys2', 'nixos-version'), '25.11pre-git');
    exp = await startTestExporter(host.config, { systemctl: host.systemctl });
    const t = await scrape(exp);
    expect(sample(t, 'nixos_desync_system_nixpkgs_info{revision="",version="25.11"}')).toBe(1);
    expect(sample(t, 'nixos_desync_system_nixpkgs_timestamp_seconds')).toBe(1767312000);
  });
});
