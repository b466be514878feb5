// What the exporter trusts under <stateDir>: the loop's own rule (state/safe-dir.ts), checked
// from outside. An untrusted state is reported (a failing collector with the reason), never
// exported as if it were true. Also: who holds the run lock.
import { lstat, readFile } from 'node:fs/promises';
import { uptime } from 'node:os';
import { join } from 'node:path';
import { staleReason, type LockOwner } from '../state/lock.js';
import { stateDirProblem } from '../state/safe-dir.js';
import { bootId, bootTimeMs } from '../util/proc.js';

/** Why `<stateDir>` cannot be trusted, or null. A missing directory is not this check's business. */
export async function stateTrustProblem(stateDir: string, uid: number | undefined = process.geteuid?.()): Promise<string | null> {
  const problem = await stateDirProblem(stateDir, { uid, who: "the exporter's user" });
  return problem === null ? null : `${problem}; the upgrade loop refuses to run until it is fixed, and nothing from it is exported`;
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
