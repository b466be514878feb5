import { describe, it, expect } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env });
  return { code, stdout, stderr };
}

describe('cli', () => {
  it('--help and --version exit 0; no command is a usage error (64)', async () => {
    expect((await cli(['--help'])).stdout).toMatch(/nixos-desync upgrade +--config FILE/);
    expect((await cli(['--version'])).stdout).toMatch(/^nixos-desync \d+\.\d+\.\d+/);
    expect((await cli([])).code).toBe(64);
  });

  it.each([
    [['frobnicate']],
    [['upgrade', '--bogus']],
    [['status', '--dry-run']],
    [['upgrade', 'extra']],
    [['upgrade', '--config']],
  ])('%j is a usage error (64)', async (args) => {
    expect((await cli(args)).code).toBe(64);
  });

  it('serve never runs the upgrade loop: --schedule is gone (usage error 64, nothing started)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cli-'));
    const cfg = join(dir, 'c.json');
    // A port that would be bound if serve started at all; it must not get that far.
    await writeFile(cfg, JSON.stringify({ stateDir: join(dir, 'state'), exporter: { listenAddress: '127.0.0.1:0' } }));
    const r = await cli(['serve', '--config', cfg, '--schedule', 'daily']);
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/--schedule/);
    expect((await cli(['--help'])).stdout).not.toMatch(/schedule/);
  });

  it('check-config prints the effective config (exit 0) or every problem with its path (exit 78)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cli-'));
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ desyncs: { hm: { requireBuilds: ['home-manager'] } } }));
    const ok = await cli(['check-config', '--config', good]);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout).desyncs.hm.maxLagRebuilds).toBe(14);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ desyncs: { '$(reboot)': {}, hm: { requireBuilds: ['a.${b}'] } }, onBreach: 'maybe' }));
    const r = await cli(['check-config', '--config', bad]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/\$\.desyncs\["\$\(reboot\)"\]: desync name must match/);
    expect(r.stderr).toMatch(/\$\.desyncs\.hm\.requireBuilds\[0\]/);
    expect(r.stderr).toMatch(/\$\.onBreach/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('check-config also validates exporter.webConfigFile (exit 78 naming the field)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cli-'));
    const web = join(dir, 'web.yml');
    await writeFile(web, 'basic_auth_users:\n  prometheus: not-a-hash\n');
    const cfg = join(dir, 'c.json');
    await writeFile(cfg, JSON.stringify({ exporter: { webConfigFile: web } }));
    const r = await cli(['check-config', '--config', cfg]);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/basic_auth_users\.prometheus/);
    // A secret that only exists at run time (e.g. a systemd credential) is a warning here.
    await writeFile(cfg, JSON.stringify({ exporter: { webConfigFile: join(dir, 'absent.yml') } }));
    const w = await cli(['check-config', '--config', cfg]);
    expect(w.code).toBe(0);
    expect(w.stderr).toMatch(/cannot be read here; it is checked when serve starts/);
  });

  it('uses $NIXOS_DESYNC_CONFIG when --config is absent; a missing config is exit 78', async () => {
    const r = await cli(['status'], { NIXOS_DESYNC_CONFIG: '/nonexistent/config.json' });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/\/nonexistent\/config\.json/);
  });

  it('status on a fresh host works before any run', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cli-'));
    const cfg = join(dir, 'c.json');
    await writeFile(cfg, JSON.stringify({ stateDir: join(dir, 'state'), profilesDir: join(dir, 'p'), runDir: join(dir, 'run'), desyncs: { hm: {} } }));
    const r = await cli(['status', '--config', cfg, '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.desyncs[0]).toMatchObject({ name: 'hm', revision: null, lagRebuilds: 0, maxLagRebuilds: 14, breached: false, lastAttempt: null });
    expect(doc.lastRun).toBeNull();
    expect(doc.system).toMatchObject({ generation: null, rebootRequired: false });
    expect((await cli(['status', '--config', cfg])).stdout).toMatch(/hm\s+-\s+0\/14/);
  });
});
