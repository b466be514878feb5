// Hostile `nixpkgs` paths: a symlink loop, a directory that is not nixpkgs, a missing path.
import { describe, it, expect } from 'vitest';
import { mkdtemp, mkdir, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCliNix, drvName, readRevision } from '../../src/nix/cli-adapter.js';

const o = { timeoutMs: 10_000 };

describe('candidate resolution', () => {
  it('a symlink loop is a clear E_CANDIDATE error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cand-'));
    await symlink(join(dir, 'b'), join(dir, 'a'));
    await symlink(join(dir, 'a'), join(dir, 'b'));
    await expect(createCliNix().resolveCandidate(join(dir, 'a'), o)).rejects.toMatchObject({ code: 'E_CANDIDATE', message: expect.stringMatching(/cannot be resolved: .*ELOOP/) });
  });

  it('a directory without default.nix is not nixpkgs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cand-'));
    await mkdir(join(dir, 'etc'));
    await expect(createCliNix().resolveCandidate(join(dir, 'etc'), o)).rejects.toMatchObject({ code: 'E_CANDIDATE', message: expect.stringMatching(/is not a nixpkgs tree/) });
    await expect(createCliNix().resolveCandidate(join(dir, 'missing'), o)).rejects.toMatchObject({ code: 'E_CANDIDATE' });
  });

  it('revision: .git-revision, else .version + .version-suffix, else the store hash; junk ignored', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-rev-'));
    const p = join(dir, 'x');
    await mkdir(p);
    expect(await readRevision('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-nixos', '/nix/store')).toBe('0123456789abcdfghijklmnpqrsvwxyz');
    await writeFile(join(p, '.version'), '25.11\n');
    await writeFile(join(p, '.version-suffix'), 'pre-git\n');
    expect(await readRevision(p, '/nix/store')).toBe('25.11pre-git');
    await writeFile(join(p, '.git-revision'), 'abc123\n');
    expect(await readRevision(p, '/nix/store')).toBe('abc123');
    await writeFile(join(p, '.git-revision'), '"; ${builtins.abort "x"}\n');
    expect(await readRevision(p, '/nix/store')).toBe('25.11pre-git');
  });

  it('derivation names for messages', () => {
    expect(drvName('/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-1.0.drv')).toBe('hello-1.0');
  });
});
