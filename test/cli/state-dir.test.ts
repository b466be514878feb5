// A state directory that cannot be created is E_STATE with the reason (exit 1, as every
// failed run), never an "unexpected error", and never a hang: under /proc Node's recursive
// mkdir spins forever at 100% CPU, ignoring SIGTERM.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startCli } from '../helpers/cli.js';
import { ensureDir } from '../../src/util/fsatomic.js';

async function configWith(stateDir: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'desync-statedir-'));
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify({ stateDir, nixpkgs: dir, channel: { update: false } }));
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

  it('ensureDir creates missing levels and accepts existing ones, one mkdir at a time', async () => {
    const base = await mkdtemp(join(tmpdir(), 'desync-ensuredir-'));
    await ensureDir(join(base, 'a/b/c'));
    await ensureDir(join(base, 'a/b/c'));
    await writeFile(join(base, 'f'), '');
    await expect(ensureDir(join(base, 'f/g'))).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(ensureDir('/proc/1/x/y')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
