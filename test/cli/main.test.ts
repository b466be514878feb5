import { describe, it, expect } from 'vitest';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { acquireLock } from '../../src/state/lock.js';

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
    // An already-aborted signal: if serve did start, it would return 0 at once instead of hanging.
    let stderr = '';
    const code = await main(['serve', '--config', cfg, '--schedule', 'daily'], { stdout: () => undefined, stderr: (s) => void (stderr += s), env: {} }, AbortSignal.abort());
    expect(code).toBe(64);
    expect(stderr).toMatch(/--schedule/);
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

  it.each([
    ['channel mode', (dir: string) => ({ desyncs: { hm: { requireBuilds: ['home-manager'] } }, stateDir: join(dir, 'state') })],
    ['flake mode', (dir: string) => ({ flake: { path: join(dir, 'etc'), host: 'h' }, desyncs: { hm: { requireBuilds: ['home-manager'] } }, stateDir: join(dir, 'state') })],
  ])('check-config in %s prints an effective config that is itself valid (fed back: exit 0, printed the same)', async (_mode, make) => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cli-'));
    const first = join(dir, 'config.json');
    await writeFile(first, JSON.stringify(make(dir)));
    const a = await cli(['check-config', '--config', first]);
    expect(a.code).toBe(0);
    const again = join(dir, 'effective.json');
    await writeFile(again, a.stdout);
    const b = await cli(['check-config', '--config', again]);
    expect(b.stderr).not.toMatch(/invalid/);
    expect(b.code).toBe(0);
    expect(JSON.parse(b.stdout)).toEqual(JSON.parse(a.stdout));
  });

  it('check-config warns (exit 0) when a channel-mode nixos-rebuild system.build lacks --no-flake', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cli-'));
    const cfg = join(dir, 'c.json');
    await writeFile(cfg, JSON.stringify({ system: { build: ['nixos-rebuild', 'build'] } }));
    const r = await cli(['check-config', '--config', cfg]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^warning: system\.build \(nixos-rebuild build\) has no --no-flake: /m);
    await writeFile(cfg, JSON.stringify({}));
    expect((await cli(['check-config', '--config', cfg])).stderr).not.toMatch(/warning/);
  });

  it('a timeout of 24.8 days or more is refused with exit 78 naming the field (#11.12)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cli-'));
    const cfg = join(dir, 'c.json');
    await writeFile(cfg, JSON.stringify({ timeouts: { build: '4w' }, stateDir: join(dir, 'state') }));
    for (const cmd of ['check-config', 'upgrade']) {
      const r = await cli([cmd, '--config', cfg]);
      expect(r.code, cmd).toBe(78);
      expect(r.stderr).toMatch(/\$\.timeouts\.build: must be at most 24d/);
    }
  });

  it('health.settle as long as timeouts.health is refused with exit 78 naming the field (#18.9)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cli-'));
    const cfg = join(dir, 'c.json');
    await writeFile(cfg, JSON.stringify({ health: { settle: '5m' }, stateDir: join(dir, 'state') }));
    for (const cmd of ['check-config', 'upgrade']) {
      const r = await cli([cmd, '--config', cfg]);
      expect(r.code, cmd).toBe(78);
      expect(r.stderr).toMatch(/\$\.health\.settle: must be shorter than timeouts\.health \(5m\)/);
    }
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

  // #11.15: `upgrade --json` prints one JSON object for every exit, not only 0 and 1.
  it('upgrade --json prints one JSON object with the exit code and the error for exits 64, 75 and 78', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cli-'));
    const stateDir = join(dir, 'state');
    const cfg = join(dir, 'c.json');
    await writeFile(cfg, JSON.stringify({ stateDir, profilesDir: join(dir, 'p'), runDir: join(dir, 'run') }));
    const usage = await cli(['upgrade', '--json', '--config', cfg, '--frobnicate']);
    expect(usage.code).toBe(64);
    expect(JSON.parse(usage.stdout)).toMatchObject({ exitCode: 64, result: null, error: { code: 'E_USAGE', message: expect.stringMatching(/frobnicate/) } });
    const usage2 = await cli(['upgrade', '--json', '--config', cfg, 'extra']);
    expect(JSON.parse(usage2.stdout)).toMatchObject({ exitCode: 64, error: { code: 'E_USAGE', message: expect.stringMatching(/unexpected argument "extra"/) } });
    // Another run holds the lock.
    await mkdir(stateDir, { recursive: true, mode: 0o755 });
    const lock = await acquireLock(join(stateDir, 'lock'), 'upgrade');
    try {
      const locked = await cli(['upgrade', '--json', '--config', cfg]);
      expect(locked.code).toBe(75);
      expect(JSON.parse(locked.stdout)).toMatchObject({ exitCode: 75, result: null, error: { code: 'E_LOCKED', message: expect.stringMatching(/another nixos-desync run holds/) } });
    } finally {
      await lock.release();
    }
    // An invalid config names each field in the object too.
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ onBreach: 'maybe', timeouts: { build: '4w' } }));
    const invalid = await cli(['upgrade', '--config', bad, '--json']);
    expect(invalid.code).toBe(78);
    const doc = JSON.parse(invalid.stdout);
    expect(doc).toMatchObject({ exitCode: 78, result: null, error: { code: 'E_CONFIG' } });
    expect(doc.error.problems.map((p: { path: string }) => p.path).sort()).toEqual(['$.onBreach', '$.timeouts.build']);
    // Without --json, stdout stays empty on these exits (the message goes to stderr).
    const plain = await cli(['upgrade', '--config', bad]);
    expect(plain).toMatchObject({ code: 78, stdout: '' });
    expect(plain.stderr).toMatch(/\$\.onBreach/);
  });
});

describe('usage errors in our words (issue 22)', () => {
  it.each([
    [['serve', '--schedule', 'daily'], 'nixos-desync: unknown option --schedule for serve (serve accepts --config, --web.listen-address, --web.config.file'],
    [['upgrade', '--config'], 'nixos-desync: option --config needs a value'],
    [['status', '--json=yes'], 'nixos-desync: option --json takes no value'],
    [['--bogus'], 'nixos-desync: unknown option --bogus'],
  ])('%j', async (args, first) => {
    const r = await cli(args);
    expect(r.code).toBe(64);
    expect(r.stderr.split('\n')[0]).toContain(first);
    expect(r.stderr).not.toMatch(/positional argument|place it at the end/);
  });
});
