// The repository's flake.nix is pinned: flake.lock exists, locks exactly the inputs flake.nix
// declares (each from the reference flake.nix gives, to a full rev with a narHash), and real Nix
// reads it without re-locking anything (offline: no input needs fetching to read the lock).
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTools } from '../helpers/tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface LockNode { inputs?: Record<string, string | string[]>; locked?: Record<string, unknown>; original?: Record<string, unknown> }
interface Lock { version: number; root: string; nodes: Record<string, LockNode> }

/** `inputs.<name>.url = "…";` lines of a flake.nix → name → URL. */
function flakeInputs(flakeNix: string): Record<string, string> {
  return Object.fromEntries([...flakeNix.matchAll(/^\s*inputs\.([A-Za-z0-9_-]+)\.url\s*=\s*"([^"]+)";/gm)].map((m) => [m[1]!, m[2]!]));
}

/** `github:OWNER/REPO[/REF]` → the `original` attributes Nix writes for it. */
function githubOriginal(url: string): Record<string, string> {
  const m = /^github:([^/]+)\/([^/?]+)(?:\/([^?]+))?$/.exec(url);
  if (!m) throw new Error(`not a github: flake reference: ${url}`);
  return { type: 'github', owner: m[1]!, repo: m[2]!, ...(m[3] ? { ref: m[3] } : {}) };
}

/** What is wrong with `lock` for `flakeNix` (empty: it locks exactly its inputs, each pinned). */
function lockProblems(flakeNix: string, lock: Lock): string[] {
  const problems: string[] = [];
  const inputs = flakeInputs(flakeNix);
  const root = lock.nodes[lock.root]?.inputs ?? {};
  if (lock.version !== 7) problems.push(`lock version ${lock.version}, Nix writes 7`);
  for (const name of Object.keys(root)) if (!(name in inputs)) problems.push(`input ${name} is locked but not in flake.nix`);
  for (const [name, url] of Object.entries(inputs)) {
    const node = typeof root[name] === 'string' ? lock.nodes[root[name] as string] : undefined;
    if (!node) { problems.push(`input ${name} of flake.nix is not locked`); continue; }
    const original = githubOriginal(url);
    if (JSON.stringify(node.original) !== JSON.stringify(Object.fromEntries(Object.entries(original).sort()))) problems.push(`input ${name}: locked from ${JSON.stringify(node.original)}, flake.nix says ${url}`);
    const l = node.locked ?? {};
    if (l.type !== original.type || l.owner !== original.owner || l.repo !== original.repo) problems.push(`input ${name}: locked to another repository`);
    if (typeof l.rev !== 'string' || !/^[0-9a-f]{40}$/.test(l.rev)) problems.push(`input ${name}: no full rev`);
    if (typeof l.narHash !== 'string' || !/^sha256-[A-Za-z0-9+/]{43}=$/.test(l.narHash)) problems.push(`input ${name}: no sha256 narHash`);
    if (typeof l.lastModified !== 'number') problems.push(`input ${name}: no lastModified`);
  }
  return problems;
}

const flakeNix = readFileSync(join(ROOT, 'flake.nix'), 'utf8');
const lock = JSON.parse(readFileSync(join(ROOT, 'flake.lock'), 'utf8')) as Lock;

describe('flake.lock', () => {
  it('locks exactly the inputs of flake.nix, each to a rev with its narHash', () => {
    expect(Object.keys(flakeInputs(flakeNix))).toEqual(['nixpkgs']);
    expect(lockProblems(flakeNix, lock)).toEqual([]);
  });

  it('a lock that does not match flake.nix is found out (input renamed, ref moved, hash missing)', () => {
    expect(lockProblems(flakeNix.replace('inputs.nixpkgs.url', 'inputs.pkgs.url'), lock)).toEqual(['input nixpkgs is locked but not in flake.nix', 'input pkgs of flake.nix is not locked']);
    expect(lockProblems(flakeNix.replace('nixos-unstable', 'nixos-25.11'), lock)[0]).toMatch(/locked from .*nixos-unstable.*flake.nix says github:NixOS\/nixpkgs\/nixos-25.11/);
    const noHash = structuredClone(lock);
    delete noHash.nodes.nixpkgs!.locked!.narHash;
    expect(lockProblems(flakeNix, noHash)).toEqual(['input nixpkgs: no sha256 narHash']);
  });

  describe.skipIf(!requireTools('nix'))('with real Nix', () => {
    it('nix flake metadata reads it offline and would change nothing (--no-update-lock-file)', () => {
      // A path: copy of flake.nix and flake.lock: metadata needs nothing else, and no git.
      const dir = mkdtempSync(join(tmpdir(), 'nixos-desync-flake-lock-'));
      try {
        copyFileSync(join(ROOT, 'flake.nix'), join(dir, 'flake.nix'));
        copyFileSync(join(ROOT, 'flake.lock'), join(dir, 'flake.lock'));
        const r = spawnSync('nix', ['--extra-experimental-features', 'nix-command flakes', 'flake', 'metadata', '--json', '--no-update-lock-file', '--no-write-lock-file', `path:${dir}`], {
          encoding: 'utf8', env: { ...process.env, NIX_CONFIG: 'sandbox = false\nsubstituters =' }, timeout: 60_000,
        });
        expect(r.stderr).not.toMatch(/error/);
        expect(r.status).toBe(0);
        const meta = JSON.parse(r.stdout) as { locks: Lock };
        expect(meta.locks).toEqual(lock);
        expect(readFileSync(join(dir, 'flake.lock'), 'utf8')).toBe(readFileSync(join(ROOT, 'flake.lock'), 'utf8'));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
