// flake.lock → the date of each input the flake locks directly.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { FLAKE_LOCK_MAX_BYTES, parseFlakeLock, readFlakeLock } from '../../src/watch/flake-lock.js';
import { FIXTURE_DIR } from '../fixtures/exporter/build.js';

describe('parseFlakeLock', () => {
  it('lists the root inputs with lastModified, sorted, without follows', () => {
    expect(parseFlakeLock(readFileSync(join(FIXTURE_DIR, 'flake.lock'), 'utf8'))).toEqual([
      { input: 'home-manager', lastModified: 1766000000, rev: '1111111111111111111111111111111111111111' },
      { input: 'nixpkgs', lastModified: 1767312000, rev: 'abc1234000000000000000000000000000000000' },
      { input: 'nixpkgs-synapse', lastModified: 1764000000, rev: '5555555555555555555555555555555555555555' },
    ]);
  });

  it('uses the input name, not the node key (nixpkgs_2 and friends)', () => {
    const lock = { nodes: { root: { inputs: { nixpkgs: 'nixpkgs_2' } }, nixpkgs_2: { locked: { lastModified: 5, type: 'github' } } }, root: 'root', version: 7 };
    expect(parseFlakeLock(JSON.stringify(lock))).toEqual([{ input: 'nixpkgs', lastModified: 5, rev: null }]);
  });

  it('an input without lastModified (a path input) is left out', () => {
    const lock = { nodes: { root: { inputs: { local: 'local' } }, local: { locked: { path: '/x', type: 'path' } } }, root: 'root', version: 7 };
    expect(parseFlakeLock(JSON.stringify(lock))).toEqual([]);
  });

  it.each([
    ['truncated JSON', '{"nodes": {'],
    ['no nodes', '{"version": 7}'],
    ['no root node', '{"nodes": {}, "root": "root"}'],
    ['an input naming a missing node', '{"nodes": {"root": {"inputs": {"a": "b"}}}, "root": "root"}'],
  ])('%s is a clear error', (_what, text) => {
    expect(() => parseFlakeLock(text)).toThrow(/^not a flake lock file: /);
  });

  it('a file over the size cap is refused before it is read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nixos-desync-lock-'));
    try {
      await writeFile(join(dir, 'flake.lock'), Buffer.alloc(FLAKE_LOCK_MAX_BYTES + 1, 32));
      await expect(readFlakeLock(join(dir, 'flake.lock'))).rejects.toThrow(/larger than/);
      await expect(readFlakeLock(join(dir, 'missing.lock'))).rejects.toThrow(/ENOENT/);
      await expect(readFlakeLock(dir)).rejects.toThrow(/not a regular file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
