// flake.nix vs flake.lock (#18.7): the drift named per input; a failing desync's locked
// attributes come from its pin, never from what the lock holds now.
import { describe, expect, it } from 'vitest';
import { lockDrift } from '../../src/source/flake-check.js';
import { pinnedLocked } from '../../src/source/flake.js';
import type { FlakeLock } from '../../src/source/flake-lock.js';
import type { Pin } from '../../src/state/model.js';

const node = (url: string, rev: string, ref?: string) => ({
  locked: { type: 'git', url, rev, narHash: `sha256-${rev}` },
  original: { type: 'git', url, ...(ref ? { ref } : {}) },
});
const lock = (nodes: Record<string, unknown>): FlakeLock =>
  ({ version: 7, root: 'root', nodes: { root: { inputs: Object.fromEntries(Object.keys(nodes).map((n) => [n, n])) }, ...nodes } }) as FlakeLock;
const pin = (revision: string): Pin => ({ path: '/nix/store/x-source', storePath: '/nix/store/x-source', revision, desyncAge: 1, pinnedAt: '2026-01-01T00:00:00.000Z' });

describe('flake.nix vs flake.lock', () => {
  it('names each input whose original changed, was added or removed; none when they agree', () => {
    const have = lock({ nixpkgs: node('file:///n', 'a'), other: node('file:///o', 'b'), gone: node('file:///g', 'c') });
    expect(lockDrift(have, have)).toEqual([]);
    const wanted = lock({ nixpkgs: node('file:///n', 'a'), other: node('file:///o', 'z', 'dev'), added: node('file:///x', 'd') });
    expect(lockDrift(wanted, have)).toEqual([
      'input added is in flake.nix but not in flake.lock',
      'input gone is in flake.lock but no longer in flake.nix',
      'input other: flake.nix says git:file:///o?ref=dev, flake.lock was locked from git:file:///o',
    ]);
  });
});

describe('a failing desync\'s input is locked to its pin', () => {
  const committed = lock({ 'nixpkgs-hm': node('file:///n', 'r1') });
  it('from the lock committed with the pin, even when the host lock was bumped by hand', () => {
    const host = lock({ 'nixpkgs-hm': node('file:///n', 'r4') });
    expect(pinnedLocked('hm', 'nixpkgs-hm', pin('r1'), committed, host, '/etc/nixos/flake.lock')).toMatchObject({ rev: 'r1' });
    // No committed lock yet, but the host lock still holds the pin: that one.
    expect(pinnedLocked('hm', 'nixpkgs-hm', pin('r1'), null, committed, '/etc/nixos/flake.lock')).toMatchObject({ rev: 'r1' });
  });

  it('nowhere to be found: the run stops before the build, saying how to lock it back', () => {
    const host = lock({ 'nixpkgs-hm': node('file:///n', 'r4') });
    expect(() => pinnedLocked('hm', 'nixpkgs-hm', pin('r1'), null, host, '/etc/nixos/flake.lock'))
      .toThrow(/desync hm stays on its pin r1 .* locks its input nixpkgs-hm to r4 .*--override-input nixpkgs-hm/);
  });
});
