// `<stateDir>/lock`: one run at a time. Created with O_EXCL; a lock is recovered (under a
// short mutex) when its owner is dead: written during another boot (boot id), or its PID is
// gone or belongs to another process now (start time). The hostname plays no part: it may
// change across a reboot, and the state directory is local to the machine.
import { open, readFile, unlink, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import { DesyncError, errorMessage } from '../util/errors.js';
import { bootId, bootTimeMs, isProcessAlive, processStartTime } from '../util/proc.js';

export interface LockOwner {
  pid: number;
  startTime?: string;
  /** /proc/sys/kernel/random/boot_id of the boot the owner ran in (absent in old locks). */
  bootId?: string;
  startedAt: string;
  host: string;
  command: string;
  /** The run that holds the lock (so a run that died holding it is recorded exactly once). */
  runId?: string;
}

export interface Lock {
  path: string;
  owner: LockOwner;
  /** The owner of a stale lock this process took over (a run that died holding it). */
  recoveredFrom: LockOwner | null;
  release(): Promise<void>;
}

/** Why a holder is dead, or null when it may still be running. */
export function staleReason(holder: LockOwner, lockMtimeMs: number, self: { bootId?: string; bootTimeMs?: number } = { bootId: bootId(), bootTimeMs: bootTimeMs() }): string | null {
  if (holder.bootId !== undefined && self.bootId !== undefined) {
    if (holder.bootId !== self.bootId) return `written during another boot (boot id ${holder.bootId})`;
  } else if (self.bootTimeMs !== undefined && lockMtimeMs < self.bootTimeMs) {
    return 'written before this boot';
  }
  if (!isProcessAlive(holder.pid, holder.startTime)) return `pid ${holder.pid} is no longer that run`;
  return null;
}

async function readOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const o = JSON.parse(await readFile(path, 'utf8')) as LockOwner;
    return typeof o.pid === 'number' ? o : undefined;
  } catch {
    return undefined;
  }
}

async function createExclusive(path: string, content: string): Promise<boolean> {
  try {
    const fh = await open(path, 'wx', 0o644);
    try {
      await fh.writeFile(content);
      await fh.sync();
    } catch (err) {
      // Never leave an empty lock behind (e.g. on a full filesystem): it would block the next run.
      await fh.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw err;
    }
    await fh.close();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    const hint = (err as NodeJS.ErrnoException).code === 'EROFS' ? ' (the state filesystem is read-only)' : (err as NodeJS.ErrnoException).code === 'ENOSPC' ? ' (the state filesystem is full)' : '';
    throw new DesyncError('E_LOCK', `cannot create lock ${path}: ${errorMessage(err)}${hint}`, { cause: err });
  }
}

const MUTEX_STALE_MS = 60_000;

export async function acquireLock(path: string, command: string, opts: { runId?: string } = {}): Promise<Lock> {
  const owner: LockOwner = {
    pid: process.pid,
    startTime: processStartTime(process.pid),
    bootId: bootId(),
    startedAt: new Date().toISOString(),
    host: hostname(),
    command,
    ...(opts.runId !== undefined ? { runId: opts.runId } : {}),
  };
  const content = JSON.stringify(owner) + '\n';
  let recoveredFrom: LockOwner | null = null;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (await createExclusive(path, content)) {
      return { path, owner, recoveredFrom, release: () => releaseLock(path, owner) };
    }
    const holder = await readOwner(path);
    // A lock file that is empty or unreadable was left by a crash while it was being written,
    // unless it is brand new (its writer may still be writing it).
    const mtime = await stat(path).then((s) => s.mtimeMs, () => Date.now());
    const stale = holder ? staleReason(holder, mtime) !== null : Date.now() - mtime > 5_000;
    if (!stale) {
      throw new DesyncError('E_LOCKED', holder
        ? `another nixos-desync run holds ${path} (pid ${holder.pid} on ${holder.host}, ${holder.command} since ${holder.startedAt})`
        : `another nixos-desync run holds ${path}`, { details: { holder } });
    }
    // Recover under a mutex so two recovering processes cannot delete each other's new lock.
    const mutex = `${path}.recover`;
    const mutexAge = await stat(mutex).then((s) => Date.now() - s.mtimeMs, () => undefined);
    if (mutexAge !== undefined && mutexAge > MUTEX_STALE_MS) await unlink(mutex).catch(() => undefined);
    if (!(await createExclusive(mutex, content))) continue;
    try {
      const again = await readOwner(path);
      if (JSON.stringify(again) === JSON.stringify(holder)) {
        await unlink(path).catch(() => undefined);
        recoveredFrom = holder ?? null;
      }
    } finally {
      await unlink(mutex).catch(() => undefined);
    }
  }
  throw new DesyncError('E_LOCKED', `could not take ${path}: it keeps changing hands`);
}

async function releaseLock(path: string, owner: LockOwner): Promise<void> {
  const holder = await readOwner(path);
  if (holder && holder.pid === owner.pid && holder.startedAt === owner.startedAt) await unlink(path).catch(() => undefined);
}
