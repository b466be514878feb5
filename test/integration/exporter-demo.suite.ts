// End to end on the demo host with real Nix: `upgrade` runs, then the exporter shows every
// contract metric with the values `status --json` reports, live changes included.
// Imported by real-nix.test.ts (all store-touching tests share one file; see there).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { collectStatus } from '../../src/cli/status.js';
import { loadConfig } from '../../src/config/load.js';
import { createDemoHost, type DemoHost } from '../../src/demo/host.js';
import { requireTools } from '../helpers/tools.js';
import { METRIC_NAMES, MONITOR_METRICS, REBOOT_METRICS, ROLLOUT_METRICS } from '../alerts/metric-names.js';
import { runCli } from '../helpers/cli.js';
import { sample, startTestExporter, waitFor, type StartedExporter } from '../fixtures/exporter/start.js';

const io: { stdout: (s: string) => void; stderr: (s: string) => void; env: NodeJS.ProcessEnv } = { stdout: () => undefined, stderr: () => undefined, env: { ...process.env, NIX_CONFIG: process.env.NIX_CONFIG ?? 'sandbox = false\nsubstituters =' } };

export function defineExporterDemoSuite(): void {
describe.skipIf(!requireTools('nix-build', 'promtool'))('demo host: upgrade, then serve', () => {
  let dir: string;
  let host: DemoHost;
  let exp: StartedExporter;

  beforeAll(async () => {
    process.env.NIX_CONFIG ??= io.env.NIX_CONFIG;
    dir = await mkdtemp(join(tmpdir(), 'nixos-desync-demo-exporter-'));
    host = await createDemoHost(dir, {
      revisions: [{ label: 'rev1' }, { label: 'rev2', broken: ['matrix-synapse'] }],
      desyncs: { synapse: { requireBuilds: ['matrix-synapse'], maxLagRebuilds: 3, maxBehind: '14d' } },
      systemPackages: { synapse: 'matrix-synapse' },
    });
    // The host's stand-in systemctl first on PATH, as the real one on NixOS (health gate).
    io.env = { ...io.env, PATH: host.path };
    expect(await main(['upgrade', '--config', host.configPath], io)).toBe(0);
    exp = await startTestExporter(await loadConfig(host.configPath));
  });
  afterAll(async () => {
    await exp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('agrees with status and passes promtool, then follows a second run live', async () => {
    const scrape = async (): Promise<string> => (await fetch(`${exp.url}metrics`)).text();
    let text = await scrape();
    for (const name of METRIC_NAMES) {
      if (name === 'nixos_desync_last_run_stage_duration_seconds' || name === 'nixos_desync_max_lag_rebuilds') continue;
      // No exporter.upgradeUnit / exporter.flakeLock on the demo host (test/metrics/monitor.test.ts).
      if ((MONITOR_METRICS as readonly string[]).includes(name)) continue;
      // No `rollout` on the demo host (test/rollout/fleet-e2e.test.ts scrapes them from real hosts).
      if ((ROLLOUT_METRICS as readonly string[]).includes(name)) continue;
      // Reboot series exist only while a trigger differs / a window is set / after verify-boot (test/metrics).
      if ((REBOOT_METRICS as readonly string[]).includes(name) && name !== 'nixos_desync_system_reboot_required') continue;
      expect(text, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'));
    }
    const status = await collectStatus(await loadConfig(host.configPath));
    expect(sample(text, 'nixos_desync_lag_rebuilds{desync="synapse"}')).toBe(status.desyncs[0]!.lagRebuilds);
    expect(sample(text, 'nixos_desync_system_generation')).toBe(status.system.generation);
    expect(sample(text, 'nixos_desync_runs_total{result="success"}')).toBe(1);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');

    await host.useRevision('rev2');
    expect(await main(['upgrade', '--config', host.configPath], io)).toBe(0);
    ({ value: text } = await waitFor(scrape, (t) => sample(t, 'nixos_desync_runs_total{result="success"}') === 2, 2000));
    await exp.model.settled();
    text = await scrape();
    expect(sample(text, 'nixos_desync_lag_rebuilds{desync="synapse"}')).toBe(1);
    expect(sample(text, 'nixos_desync_in_sync{desync="synapse"}')).toBe(0);
    expect(sample(text, 'nixos_desync_attempts_total{desync="synapse",result="failed"}')).toBe(1);
    expect(sample(text, 'nixos_desync_system_generation')).toBe(2);
    expect(sample(text, 'nixos_desync_system_generations')).toBe(2);
    expect(sample(text, 'nixos_desync_system_activation_pending')).toBe(0);
    expect(sample(text, 'nixos_desync_run_in_progress')).toBe(0);
  });

  it('no scrape mixes two runs: /metrics polled every few ms across 20 runs', async () => {
    // Runs alternate between a revision where synapse builds and one where it does not, so
    // every run changes the lag, the gate counters, the run counters and the generation.
    const expected = new Map<number, { lag: number; generation: number | null }>();
    const s0 = await collectStatus(await loadConfig(host.configPath));
    const total = (t: { success: number; failure: number; breach: number }): number => t.success + t.failure + t.breach;
    expected.set(total(s0.runsTotal), { lag: s0.desyncs[0]!.lagRebuilds, generation: s0.system.generation });
    const seen: string[] = [];
    let stop = false;
    const poller = (async () => {
      while (!stop) {
        seen.push(await (await fetch(`${exp.url}metrics`)).text());
        await new Promise((r) => setTimeout(r, 3));
      }
    })();
    try {
      for (let i = 0; i < 20; i++) {
        await host.useRevision(i % 2 === 0 ? 'rev1' : 'rev2');
        const r = await runCli(['upgrade', '--config', host.configPath]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        const st = await collectStatus(await loadConfig(host.configPath));
        expected.set(total(st.runsTotal), { lag: st.desyncs[0]!.lagRebuilds, generation: st.system.generation });
      }
      await waitFor(async () => (await fetch(`${exp.url}metrics`)).text(), (t) => sample(t, 'nixos_desync_runs_total{result="success"}')! >= total(s0.runsTotal) + 20, 5000);
    } finally {
      stop = true;
      await poller;
    }
    expect(expected.size).toBe(21);
    const bad: string[] = [];
    const runsSeen = new Set<number>();
    for (const t of seen) {
      const runs = ['success', 'failure', 'breach'].reduce((n, r) => n + (sample(t, `nixos_desync_runs_total{result="${r}"}`) ?? 0), 0);
      const attempts = (sample(t, 'nixos_desync_attempts_total{desync="synapse",result="passed"}') ?? 0) + (sample(t, 'nixos_desync_attempts_total{desync="synapse",result="failed"}') ?? 0);
      const lag = sample(t, 'nixos_desync_lag_rebuilds{desync="synapse"}');
      const gen = sample(t, 'nixos_desync_system_generation') ?? null;
      const want = expected.get(runs);
      runsSeen.add(runs);
      // Every run gates synapse once: gate attempts and run counters move together.
      if (attempts !== runs || want === undefined || lag !== want.lag || gen !== want.generation) {
        bad.push(`runs=${runs} attempts=${attempts} lag=${lag} generation=${gen}; after that run: ${JSON.stringify(want)}`);
      }
    }
    expect(bad.slice(0, 5)).toEqual([]);
    // The poller really saw the runs go by (not just the first and the last state).
    expect(seen.length).toBeGreaterThan(200);
    expect(runsSeen.size).toBeGreaterThanOrEqual(15);
  }, 600_000);
});
}
