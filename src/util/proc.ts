// Process identity that survives PID reuse: (pid, start time from /proc/PID/stat).
import { readdirSync, readFileSync } from 'node:fs';

export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); fields after the parenthesised command name are space separated.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** This boot's id (changes at every boot), or undefined where /proc does not provide it. */
export function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** When this boot started (`btime` of /proc/stat), in ms since the epoch. */
export function bootTimeMs(): number | undefined {
  try {
    const m = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    return m ? Number(m[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** When process `pid` started, in ms since the epoch (boot time + start ticks at 100 Hz, Linux's USER_HZ). */
export function processStartMs(pid: number): number | undefined {
  const ticks = processStartTime(pid);
  const boot = bootTimeMs();
  if (ticks === undefined || boot === undefined) return undefined;
  return boot + (Number(ticks) * 1000) / 100;
}

export function isProcessAlive(pid: number, startTime?: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (startTime === undefined) return true;
  const now = processStartTime(pid);
  return now === undefined ? true : now === startTime;
}

/** Kills a process group left behind by a crashed run, if its leader is still that process. */
export function killStaleGroup(pgid: number, startTime?: string): boolean {
  if (!isProcessAlive(pgid, startTime)) return false;
  try {
    process.kill(-pgid, 'SIGKILL');
    return true;
  } catch {
    return false;
  }
}

/** Pids whose argv runs `path` (as the program, or as the script its interpreter runs): what a killed parent may have left at work. */
export function processesRunning(path: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    if (argv[0] === path || argv[1] === path) pids.push(Number(e));
  }
  return pids;
}
