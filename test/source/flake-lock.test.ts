import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, stat, writeFile, chmod, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  lockableProblem, lockedInfo, parseFlakeLock, readLockFile, rootInput, serializeFlakeLock, withInputsLocked, writeLockFile, type FlakeLock,
} from '../../src/source/flake-lock.js';
import { nixAttrsLiteral, nixString, resolverFlakeNix, describeRef } from '../../src/source/flake-fetch.js';

// A lock as Nix 2.8 writes it (byte for byte: sorted keys, two-space indent, final newline).
const node = (rev: string, url = 'file:///srv/nixpkgs') => ({
  locked: { lastModified: 1796042231, narHash: `sha256-${rev}=`, ref: 'master', rev, revCount: 1, type: 'git', url },
  original: { type: 'git', url },
});
export const NIX_WRITTEN = `{
  "nodes": {
    "home-manager": {
      "inputs": {
        "nixpkgs": [
          "nixpkgs"
        ]
      },
      "locked": {
        "lastModified": 1700000000,
        "narHash": "sha256-hm=",
        "owner": "nix-community",
        "repo": "home-manager",
        "rev": "hmrev",
        "type": "github"
      },
      "original": {
        "owner": "nix-community",
        "repo": "home-manager",
        "type": "github"
      }
    },
    "nixpkgs": ${JSON.stringify(node('r1'), null, 2).replace(/\n/g, '\n    ')},
    "nixpkgs-synapse": ${JSON.stringify(node('r1'), null, 2).replace(/\n/g, '\n    ')},
    "root": {
      "inputs": {
        "home-manager": "home-manager",
        "nixpkgs": "nixpkgs",
        "nixpkgs-follower": [
          "nixpkgs"
        ],
        "nixpkgs-synapse": "nixpkgs-synapse"
      }
    }
  },
  "root": "root",
  "version": 7
}
`;

describe('flake.lock', () => {
  it('a lock Nix wrote round-trips byte for byte', () => {
    expect(serializeFlakeLock(parseFlakeLock(NIX_WRITTEN))).toBe(NIX_WRITTEN);
  });

  it('re-locking inputs changes only their `locked`; every other node keeps its bytes', () => {
    const lock = parseFlakeLock(NIX_WRITTEN);
    const cand = node('r2').locked;
    const next = withInputsLocked(lock, ['nixpkgs', 'nixpkgs-synapse'], cand);
    expect(next.nodes.nixpkgs!.locked).toEqual(cand);
    expect(next.nodes['nixpkgs-synapse']!.locked).toEqual(cand);
    expect(next.nodes['nixpkgs-synapse']!.original).toEqual(lock.nodes['nixpkgs-synapse']!.original);
    expect(next.nodes['home-manager']).toEqual(lock.nodes['home-manager']);
    expect(next.nodes.root).toEqual(lock.nodes.root);
    // The input lock is unchanged (a copy was made).
    expect(lock.nodes.nixpkgs!.locked!.rev).toBe('r1');
    const text = serializeFlakeLock(next);
    const hm = (t: string) => t.slice(t.indexOf('"home-manager": {'), t.indexOf('"nixpkgs": {'));
    expect(hm(text)).toBe(hm(NIX_WRITTEN));
    expect(text.split('"r2"').length - 1).toBe(2);
  });

  it('says why an input cannot be re-locked: missing, a follows, inputs of its own', () => {
    const lock = parseFlakeLock(NIX_WRITTEN);
    expect(lockableProblem(lock, 'nixpkgs')).toBeNull();
    expect(lockableProblem(lock, 'nixpkgs-hm')).toMatch(/input "nixpkgs-hm" is not an input of the flake in its flake.lock \(inputs: home-manager, nixpkgs, nixpkgs-follower, nixpkgs-synapse\)/);
    expect(lockableProblem(lock, 'nixpkgs-follower')).toMatch(/follows "nixpkgs": it must be locked on its own/);
    expect(lockableProblem(lock, 'home-manager')).toMatch(/has inputs of its own \(nixpkgs\)/);
    expect(rootInput(lock, 'nixpkgs')).toMatchObject({ kind: 'node', node: 'nixpkgs' });
    expect(() => withInputsLocked(lock, ['nixpkgs-hm'], {})).toThrow(/not an input/);
    expect(lockedInfo(lock.nodes.nixpkgs!.locked!)).toEqual({ rev: 'r1', narHash: 'sha256-r1=', lastModified: 1796042231 });
  });

  it.each([
    ['not json', /not valid JSON/],
    ['[]', /not a flake lock file/],
    ['{"nodes":{},"root":"root","version":7}', /root node "root" is missing/],
    ['{"nodes":{"root":{}},"root":"root","version":3}', /version 3 is not supported/],
  ])('refuses a broken lock file: %s', (text, msg) => {
    expect(() => parseFlakeLock(text, '/etc/nixos/flake.lock')).toThrow(msg);
  });

  it('writes atomically, keeping the mode, and leaves no temp file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-lock-'));
    const file = join(dir, 'flake.lock');
    await writeFile(file, NIX_WRITTEN);
    await chmod(file, 0o640);
    const { lock, bytes } = await readLockFile(file);
    expect(bytes.toString()).toBe(NIX_WRITTEN);
    await writeLockFile(file, serializeFlakeLock(withInputsLocked(lock, ['nixpkgs'], node('r9').locked)));
    expect((await stat(file)).mode & 0o777).toBe(0o640);
    expect((await readLockFile(file)).lock.nodes.nixpkgs!.locked!.rev).toBe('r9');
    await writeLockFile(file, bytes);
    expect(await readFile(file, 'utf8')).toBe(NIX_WRITTEN);
    expect(await readdir(dir)).toEqual(['flake.lock']);
    await expect(readLockFile(join(dir, 'absent.lock'))).rejects.toThrow(/absent\.lock: cannot be read/);
  });
});

describe('the resolver flake (original reference → Nix literal)', () => {
  it('writes an original reference as an escaped Nix attrset', () => {
    expect(nixAttrsLiteral({ type: 'github', owner: 'NixOS', repo: 'nixpkgs', ref: 'nixos-unstable' }))
      .toBe('{ owner = "NixOS"; ref = "nixos-unstable"; repo = "nixpkgs"; type = "github"; }');
    expect(nixString('a"b\\c${d}')).toBe('"a\\"b\\\\c\\${d}"');
    expect(resolverFlakeNix({ type: 'git', url: 'file:///x' }, false)).toMatch(/inputs\.source = \{ flake = false; type = "git"; url = "file:\/\/\/x"; \};/);
    expect(describeRef({ type: 'github', owner: 'NixOS', repo: 'nixpkgs', ref: 'nixos-unstable' })).toBe('github:NixOS/nixpkgs?ref=nixos-unstable');
  });

  it.each([
    [{ 'a b': 'x' }, /not a plain name/],
    [{ url: 'x\u0001' }, /control character/],
    [{ url: { nested: 1 } }, /unsupported kind/],
    [{ revCount: -1 }, /unsupported kind/],
  ])('refuses what it cannot write faithfully: %j', (attrs, msg) => {
    expect(() => nixAttrsLiteral(attrs as Record<string, unknown>)).toThrow(msg);
  });
});

export type { FlakeLock };
