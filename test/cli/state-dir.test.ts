// A state directory that cannot be created is E_STATE with the reason (exit 1, as every
// failed run), never an "unexpected error", and never a hang: under /proc Node's recursive
// mkdir spins forever at 100% CPU, ignoring SIGTERM.
import { chmod, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startCli, waitUntil } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { ensureDir } from '../../src/util/fsatomic.js';

const SLOW_TALKER = fileURLToPath(new URL('../fixtures/bin/slow-talker.sh', import.meta.url));

async function configWith(stateDir: string, extra: Record<string, unknown> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'desync-statedir-'));
  await chmod(dir, 0o755);
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify({ stateDir, nixpkgs: dir, channel: { update: false }, ...extra }), { mode: 0o644 });
  return file;
}

describe('an uncreatable state directory', () => {
  it.each([
    ['a file on the way (ENOTDIR)', '/etc/passwd/state', /cannot create the state directory \/etc\/passwd\/state: ENOTDIR \(at \/etc\/passwd\)/],
    ['under /proc (ENOENT, where Node would spin)', '/proc/1/nixos-desync', /cannot create the state directory \/proc\/1\/nixos-desync: ENOENT/],
  ])('%s: E_STATE, exit 1, within seconds', async (_what, stateDir, message) => {
    const { child, done } = startCli(['upgrade', '--config', await configWith(stateDir), '--json']);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const r = await done;
    clearTimeout(timer);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(JSON.parse(r.stdout)).toMatchObject({ exitCode: 1, error: { code: 'E_STATE' } });
  });

  it('a directory this user may not write (EACCES): E_STATE naming where, exit 1', async () => {
    const base = await mkdtemp(join(tmpdir(), 'desync-eacces-'));
    await mkdir(join(base, 'locked'), { mode: 0o500 });
    await chmod(base, 0o755);
    await chmod(join(base, 'locked'), 0o500);
    // Root may write anywhere: the CLI then runs as nobody (setpriv drops the uid, no capabilities).
    const asNobody = process.geteuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--'] : [];
    const { done } = startCli(['upgrade', '--config', await configWith(join(base, 'locked', 'state')), '--json'], {}, asNobody);
    const r = await done;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot create the state directory .*\/locked\/state: EACCES; check stateDir in the config/);
    expect(r.stderr).not.toMatch(/unexpected error/);
    expect(JSON.parse(r.stdout)).toMatchObject({ exitCode: 1, error: { code: 'E_STATE' } });
  });

  it('ensureDir creates missing levels and accepts existing ones, one mkdir at a time', async () => {
    const base = await mkdtemp(join(tmpdir(), 'desync-ensuredir-'));
    await ensureDir(join(base, 'a/b/c'));
    await ensureDir(join(base, 'a/b/c'));
    await writeFile(join(base, 'f'), '');
    await expect(ensureDir(join(base, 'f/g'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(ensureDir('/proc/1/x/y')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe.skipIf(!requireTools('nix-store'))('the first SIGTERM', () => {
  it('stops a run inside a long step: the step\'s process tree is killed, the run is recorded, exit 1 — no second signal needed', async () => {
    const base = await mkdtemp(join(tmpdir(), 'desync-sigterm-'));
    await chmod(base, 0o755);
    const nixpkgs = join(base, 'nixpkgs');
    await mkdir(nixpkgs);
    await writeFile(join(nixpkgs, '.git-revision'), 'abcdef1234567890');
    await writeFile(join(nixpkgs, 'default.nix'), '{ ... }: { }');
    const stateDir = join(base, 'state');
    const cfg = await configWith(stateDir, { nixpkgs, profilesDir: join(base, 'profiles'), runDir: join(base, 'run'), system: { build: [SLOW_TALKER, '600', '1'], activate: null } });
    const { child, done } = startCli(['upgrade', '--config', cfg]);
    const inBuild = await waitUntil(async () => (await readFile(join(stateDir, 'journal.json'), 'utf8').catch(() => '')).includes('"stage":"system_build"'), 60_000);
    expect(inBuild).toBe(true);
    await new Promise((r) => setTimeout(r, 300)); // the step is running: its first line is out
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const r = await done;
    clearTimeout(timer);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/received SIGTERM, stopping/);
    const state = JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8')) as { runs: { last: { result: string; error: string } } };
    expect(state.runs.last.result).toBe('failure');
    // Nothing of the step is left running.
    const ps = await import('node:child_process').then((cp) => cp.spawnSync('pgrep', ['-f', `${SLOW_TALKER} 600`], { encoding: 'utf8' }));
    expect(ps.stdout.trim()).toBe('');
  });
});
