// What the exporter trusts under <stateDir>, by the same rule as the loop (sshd StrictModes):
// the directory, `sets/` and the state files must be real (not symlinks), owned by root or by
// this user, and not group/world-writable. An untrusted state is reported (a failing
// collector with the reason), never exported as if it were true. Also: who holds the run lock.
import { lstat, readFile } from 'node:fs/promises';
import { uptime } from 'node:os';
import { join } from 'node:path';
import { staleReason, type LockOwner } from '../state/lock.js';
import { bootId, bootTimeMs } from '../util/proc.js';

const STATE_FILES = ['state.json', 'history.json', 'journal.json'];

/** Why `<stateDir>` cannot be trusted, or null. A missing directory is not this check's business. */
export async function stateTrustProblem(stateDir: string, uid: number | undefined = process.geteuid?.()): Promise<string | null> {
  const entries: Array<[string, 'dir' | 'file']> = [[stateDir, 'dir'], [join(stateDir, 'sets'), 'dir'], ...STATE_FILES.map((f) => [join(stateDir, f), 'file'] as [string, 'file'])];
  for (const [path, kind] of entries) {
    const st = await lstat(path).catch(() => null);
    if (!st) continue; // missing: a fresh host, or nothing to trust yet
    if (st.isSymbolicLink()) return `${path} is a symlink; the upgrade loop refuses to use it and its content is not exported`;
    if (kind === 'dir' && !st.isDirectory()) return `${path} is not a directory`;
    if (kind === 'file' && !st.isFile()) return `${path} is not a regular file`;
    if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
      return `${path} is owned by uid ${st.uid}, not by root or the exporter's user (uid ${uid}); the upgrade loop refuses to run until it is fixed (chown root)`;
    }
    if ((st.mode & 0o022) !== 0) {
      return `${path} is group- or world-writable (mode ${(st.mode & 0o777).toString(8)}); the upgrade loop refuses to run until it is fixed (chmod go-w ${path})`;
    }
  }
  return null;
}

export interface LockHolder {
  pid: number;
  startedAt: string | null;
}

/**
 * This boot, as the exporter can see it: its unit has ProcSubset=pid, which hides
 * /proc/sys/kernel/random/boot_id and /proc/stat, so the boot time falls back to the uptime
 * (libuv reads CLOCK_BOOTTIME when /proc/uptime is hidden). A lock left by a run that died in
 * an earlier boot is then still recognised as stale.
 */
export function exporterBootInfo(): { bootId?: string; bootTimeMs?: number } {
  return { bootId: bootId(), bootTimeMs: bootTimeMs() ?? Math.floor(Date.now() - uptime() * 1000) };
}

/**
 * The live process holding `<stateDir>/lock`, or null (no lock, or its owner is dead by the
 * loop's own rule: another boot, or its pid is no longer that process). A lock that cannot be
 * parsed yet is held while it is young (its writer is still writing it).
 * Pass `self` (exporterBootInfo(), computed once) on hot paths: the default reads /proc each call.
 */
export async function runLockHolder(stateDir: string, self: { bootId?: string; bootTimeMs?: number } = exporterBootInfo()): Promise<LockHolder | null> {
  const path = join(stateDir, 'lock');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return null;
  }
  const mtimeMs = await lstat(path).then((st) => st.mtimeMs, () => 0);
  try {
    const o = JSON.parse(text) as LockOwner;
    if (typeof o.pid !== 'number') throw new Error('no pid');
    return staleReason(o, mtimeMs, self) === null ? { pid: o.pid, startedAt: typeof o.startedAt === 'string' ? o.startedAt : null } : null;
  } catch {
    return Date.now() - mtimeMs < 5_000 ? { pid: 0, startedAt: null } : null;
  }
}
