// The one trust rule for <stateDir> (sshd's StrictModes): the directory, `sets/` and the state
// files are real (no symlink), owned by root or this user, and not group- or world-writable.
// The loop refuses to run (E_UNSAFE_PATH), `status` refuses to show (it would show what anyone
// could have written), and the exporter reports a failing collector, re-checked every scrape
// (watch/state-trust.ts) — all three by this code, so they never disagree.
import { lstat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { DesyncError } from '../util/errors.js';

/** The files under <stateDir> whose content the loop, status and the exporter trust. */
export const STATE_FILES = ['state.json', 'history.json', 'journal.json'] as const;

export interface TrustOptions {
  /** The uid besides root that may own the paths (default: this process's). */
  uid?: number;
  /** Who that uid is, in messages ("this user", "the exporter's user"). */
  who?: string;
}

/** Why one path breaks the rule, from its lstat; null when it is fine. */
export function statProblem(path: string, st: Stats, kind: 'dir' | 'file', opts: TrustOptions = {}): string | null {
  if (st.isSymbolicLink()) {
    return `${path} is a symlink; ${kind === 'dir' ? 'the state directory must be a real directory' : 'state files must be regular files'}`;
  }
  if (kind === 'dir' && !st.isDirectory()) return `${path} is not a directory`;
  if (kind === 'file' && !st.isFile()) return `${path} is not a regular file`;
  const uid = opts.uid ?? process.geteuid?.();
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    return `${path} is owned by uid ${st.uid}, not by root or ${opts.who ?? 'this user'} (uid ${uid}); fix with chown root ${path}`;
  }
  if ((st.mode & 0o022) !== 0) {
    return `${path} is group- or world-writable (mode ${(st.mode & 0o777).toString(8)}); fix with chmod go-w ${path}`;
  }
  return null;
}

/** Everything the rule covers; the loop checks `sets/` itself once it holds the lock (it creates it). */
const ALL_PARTS: Array<[string, 'dir' | 'file']> = [['', 'dir'], ['sets', 'dir'], ...STATE_FILES.map((f) => [f, 'file'] as [string, 'file'])];

/** Why `<stateDir>` cannot be trusted, or null. Missing paths are fine (a fresh host, nothing to trust yet). */
export async function stateDirProblem(stateDir: string, opts: TrustOptions = {}, parts = ALL_PARTS): Promise<string | null> {
  for (const [rel, kind] of parts) {
    const path = rel === '' ? stateDir : join(stateDir, rel);
    const st = await lstat(path).catch(() => null);
    if (!st) continue;
    const problem = statProblem(path, st, kind, opts);
    if (problem !== null) return problem;
  }
  return null;
}

/** Throws E_UNSAFE_PATH when `<stateDir>` or its state files break the rule (`sets/`: see ALL_PARTS). */
export async function checkStateDir(stateDir: string): Promise<void> {
  const problem = await stateDirProblem(stateDir, {}, ALL_PARTS.filter(([rel]) => rel !== 'sets'));
  if (problem !== null) throw new DesyncError('E_UNSAFE_PATH', problem);
}

/** One directory by the same rule; a missing one throws its ENOENT (callers tell "absent" from "unsafe"). */
export async function checkSafeDir(dir: string): Promise<void> {
  const problem = statProblem(dir, await lstat(dir), 'dir');
  if (problem !== null) throw new DesyncError('E_UNSAFE_PATH', problem);
}
