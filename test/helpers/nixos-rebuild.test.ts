// The vendored nixos-rebuild stays unmodified, its install fills every placeholder, and the
// test-only Nix shims log calls and emulate `nix build --print-out-paths` (no real Nix needed).
import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { NIXOS_REBUILD_FIXTURES, NIX_CALLS_ENV, classifyNixCall, installNixosRebuild, readNixCalls, writeNixShims } from './nixos-rebuild.js';

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...(await files(join(dir, e.name))));
    else out.push(join(dir, e.name));
  }
  return out;
}

const sha256 = async (p: string): Promise<string> => createHash('sha256').update(await readFile(p)).digest('hex');

describe('vendored nixos-rebuild (test/fixtures/nixos-rebuild)', () => {
  it('every copy is byte for byte what its README lists (unmodified), and the README lists every file', async () => {
    const readme = await readFile(join(NIXOS_REBUILD_FIXTURES, 'README.md'), 'utf8');
    const listed = Object.fromEntries([...readme.matchAll(/^([0-9a-f]{64}) {2}(\S+)$/gm)].map((m) => [m[2]!, m[1]!]));
    const actual: Record<string, string> = {};
    for (const f of await files(NIXOS_REBUILD_FIXTURES)) {
      const rel = relative(NIXOS_REBUILD_FIXTURES, f);
      if (rel !== 'README.md') actual[rel] = await sha256(f);
    }
    expect(actual).toEqual(listed);
    expect(Object.keys(actual)).toEqual(expect.arrayContaining(['COPYING', 'bash/nixos-rebuild.sh', 'ng/nixos_rebuild/__init__.py']));
  });

  it('installing fills every placeholder into the temp copy and leaves the committed template as it was', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-rebuild-install-'));
    const template = join(NIXOS_REBUILD_FIXTURES, 'bash', 'nixos-rebuild.sh');
    const before = await sha256(template);
    const bin = await installNixosRebuild('bash', join(dir, 'bash'), { nixPrefix: join(dir, 'nix') });
    const filled = await readFile(join(bin, 'nixos-rebuild'), 'utf8');
    expect(await readFile(template, 'utf8')).toMatch(/@runtimeShell@[\s\S]*@nix@/);
    expect(filled).not.toMatch(/@[A-Za-z_][A-Za-z0-9_]*@/);
    expect(filled).toContain(`export PATH=${join(dir, 'nix')}/bin:$PATH`);
    expect(await sha256(template)).toBe(before);
    // ng's launcher needs a Python ≥ 3.12; without one, installing says so.
    await expect(installNixosRebuild('ng', join(dir, 'ng'), { nixPrefix: join(dir, 'nix'), python: null })).rejects.toThrow(/Python >= 3\.12/);
  });
});

describe('test-only Nix shims', () => {
  it('log each call as its argv; `nix build --print-out-paths` runs --json and prints the out paths', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-nix-shims-'));
    // A stand-in "real" nix that records its argv and answers as Nix 2.8's `nix build --json`.
    const real = join(dir, 'real');
    await writeFile(join(dir, 'nix'), `#!/bin/sh\nprintf '%s\\n' "$@" > ${JSON.stringify(real)}\n` +
      `echo '[{"drvPath":"/nix/store/aaa-x.drv","outputs":{"dev":"/nix/store/bbb-x-dev","out":"/nix/store/ccc-x"}}]'\n`);
    await chmod(join(dir, 'nix'), 0o755);
    const prefix = await writeNixShims(join(dir, 'prefix'), dir);
    const calls = join(dir, 'calls');
    const out = execFileSync(join(prefix, 'bin', 'nix'), ['--extra-experimental-features', 'nix-command flakes', 'build', '--print-out-paths', '/etc/x#y'], {
      encoding: 'utf8', env: { ...process.env, [NIX_CALLS_ENV]: calls },
    });
    expect(out).toBe('/nix/store/bbb-x-dev\n/nix/store/ccc-x\n');
    expect((await readFile(real, 'utf8')).split('\n').filter((l) => l !== '')).toEqual(['--extra-experimental-features', 'nix-command flakes', 'build', '--json', '/etc/x#y']);
    // Without the flag the real one's output passes through unchanged.
    expect(execFileSync(join(prefix, 'bin', 'nix'), ['build', '--json', 'a#b'], { encoding: 'utf8' })).toMatch(/^\[\{"drvPath"/);
    expect(await readNixCalls(calls)).toEqual([['nix', '--extra-experimental-features', 'nix-command flakes', 'build', '--print-out-paths', '/etc/x#y']]);
  });

  it('classify: evaluations, fetches of flake inputs, store operations', () => {
    const F = ['--extra-experimental-features', 'nix-command flakes'];
    expect(classifyNixCall(['nix-instantiate', '--eval', '-E', '1'])).toBe('eval');
    expect(classifyNixCall(['nix-build', '<nixpkgs/nixos>', '-A', 'system'])).toBe('eval');
    expect(classifyNixCall(['nix', ...F, 'build', '--print-out-paths', '/etc/nixos#x'])).toBe('eval');
    expect(classifyNixCall(['nix', ...F, 'eval', '--raw', 'x'])).toBe('eval');
    expect(classifyNixCall(['nix', ...F, 'flake', 'show', '.'])).toBe('eval');
    expect(classifyNixCall(['nix', ...F, 'flake', 'archive', '--json', 'path:/tmp/x'])).toBe('fetch');
    expect(classifyNixCall(['nix', '--option', 'a', 'b', 'flake', 'lock', '.'])).toBe('fetch');
    expect(classifyNixCall(['nix-env', '-f', '<nixpkgs>', '-qa'])).toBe('eval');
    expect(classifyNixCall(['nix-env', '-p', '/nix/var/nix/profiles/system', '--set', '/nix/store/x'])).toBe('store');
    expect(classifyNixCall(['nix-store', '-r', '/nix/store/x.drv'])).toBe('store');
    expect(classifyNixCall(['nix', ...F, 'copy', '--to', 'ssh://h', '/nix/store/x'])).toBe('store');
  });
});
