// Crash-safe file writes: temp file in the same dir, fsync, rename, fsync the directory.
import { lstat, open, rename, unlink, mkdir, symlink, readdir, stat } from 'node:fs/promises';
import { dirname, basename, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { failpoint } from './failpoint.js';
import { isProcessAlive, processStartMs } from './proc.js';

export const TMP_MARK = '.tmp-';

export function tempNameFor(path: string): string {
  return join(dirname(path), `.${basename(path)}${TMP_MARK}${process.pid}-${randomBytes(4).toString('hex')}`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function writeFileAtomic(path: string, data: string | Buffer, mode = 0o644, failpointName?: string): Promise<void> {
  const tmp = tempNameFor(path);
  const fh = await open(tmp, 'wx', mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (failpointName) failpoint(failpointName);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(path));
}

/** Points `link` at `target` atomically (a new symlink renamed over the old one). */
export async function replaceSymlink(target: string, link: string): Promise<void> {
  const tmp = tempNameFor(link);
  await symlink(target, tmp);
  try {
    await rename(tmp, link);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dirname(link));
}

export async function ensureDir(dir: string, mode = 0o755): Promise<void> {
  // One mkdir per missing component, never `mkdir({ recursive: true })`: Node's recursive mkdir
  // retries forever (100% CPU, signals ignored) under /proc, where mkdir says ENOENT for a parent
  // that exists. Each step either succeeds, finds a directory, or throws its own errno.
  const parts = resolve(dir).split('/').filter((x) => x !== '');
  let at = '';
  for (const part of parts) {
    at += `/${part}`;
    try {
      await mkdir(at, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!(await stat(at)).isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${at}'`), { code: 'ENOTDIR', path: at });
    }
  }
}

/** The writer's pid encoded in a temp name by `tempNameFor` (`.<name>.tmp-<pid>-<hex>`). */
export function tempWriterPid(name: string): number | undefined {
  const m = /\.tmp-(\d+)-[0-9a-f]+$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * Removes temp files a crashed writer left behind in `dir`: only those whose writer is dead
 * (its pid is gone, or was reused by a process that started after the file was written).
 */
export async function removeStaleTemps(dir: string, writerAlive: (pid: number, fileMtimeMs: number) => boolean = tempWriterAlive): Promise<string[]> {
  const removed: string[] = [];
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return removed;
  }
  for (const n of names) {
    if (!n.startsWith('.') || !n.includes(TMP_MARK)) continue;
    const pid = tempWriterPid(n);
    const mtime = await lstat(join(dir, n)).then((s) => s.mtimeMs, () => undefined);
    if (mtime === undefined) continue;
    if (pid !== undefined && writerAlive(pid, mtime)) continue;
    await unlink(join(dir, n)).catch(() => undefined);
    removed.push(n);
  }
  return removed;
}

function tempWriterAlive(pid: number, fileMtimeMs: number): boolean {
  if (pid === process.pid) return true;
  if (!isProcessAlive(pid)) return false;
  // A process that started after the file was written cannot be its writer (pid reuse).
  const started = processStartMs(pid);
  return started === undefined || started <= fileMtimeMs + 1000;
}
