// Runs one external program as argv (never a shell) in its own process group, so a timeout
// or an abort kills the whole tree it started, not just the direct child.
import { spawn } from 'node:child_process';
import { DesyncError } from './errors.js';
import { MAX_TIMER_MS } from './duration.js';

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs: number;
  /** Grace period between SIGTERM and SIGKILL of the process group. */
  killGraceMs?: number;
  /** Keep at most this many bytes of each stream (the tail). */
  maxOutputBytes?: number;
  signal?: AbortSignal;
  /** Called with the child's process group id once it started (for crash recovery). */
  onSpawn?: (pgid: number) => void;
}

export interface RunResult {
  argv: string[];
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

export type Runner = (argv: readonly string[], opts: RunOptions) => Promise<RunResult>;

class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly max: number) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > this.max && this.chunks.length > 1) this.size -= this.chunks.shift()!.length;
  }
  toString(): string {
    const all = Buffer.concat(this.chunks);
    return (all.length > this.max ? all.subarray(all.length - this.max) : all).toString('utf8');
  }
}

function killGroup(pgid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* already gone */
  }
}

/** Process groups started by this process that are still running; killed on our exit. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const g of liveGroups) killGroup(g, 'SIGKILL');
  });
}

export const runCommand: Runner = (argv, opts) => {
  const [cmd, ...args] = argv;
  if (!cmd) return Promise.reject(new DesyncError('E_COMMAND', 'empty argv'));
  installExitHook();
  const started = Date.now();
  // An already-aborted run starts nothing (an abort listener added now would never fire).
  if (opts.signal?.aborted) {
    return Promise.resolve({ argv: [...argv], exitCode: null, signal: 'SIGTERM', stdout: '', stderr: 'not started: the run was interrupted', timedOut: false, durationMs: 0 });
  }
  const maxBytes = opts.maxOutputBytes ?? 256 * 1024;
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
      shell: false,
    });
    const out = new TailBuffer(maxBytes);
    const err = new TailBuffer(maxBytes);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const terminate = (): void => {
      if (child.pid === undefined) return;
      killGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => child.pid !== undefined && killGroup(child.pid, 'SIGKILL'), opts.killGraceMs ?? 5000);
      killTimer.unref();
    };
    // Clamped: a longer delay would overflow Node's timer and fire at once (config refuses it).
    const timer = setTimeout(() => {
      timedOut = true;
      terminate();
    }, Math.min(opts.timeoutMs, MAX_TIMER_MS));
    const onAbort = (): void => terminate();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (child.pid !== undefined) {
      liveGroups.add(child.pid);
      opts.onSpawn?.(child.pid);
    }
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      opts.signal?.removeEventListener('abort', onAbort);
      const what = e.code === 'ENOENT' ? `program not found: ${cmd}` : `cannot start ${cmd}: ${e.message}`;
      reject(new DesyncError('E_COMMAND', what, { cause: e, details: { argv: [...argv] } }));
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (child.pid !== undefined) {
        // The direct child exited; grandchildren left in its group are killed too, so a
        // finished command never leaves a process tree behind.
        killGroup(child.pid, 'SIGKILL');
        liveGroups.delete(child.pid);
      }
      if (killTimer) clearTimeout(killTimer);
      resolve({
        argv: [...argv],
        exitCode,
        signal,
        stdout: out.toString(),
        stderr: err.toString(),
        timedOut,
        durationMs: Date.now() - started,
      });
    });
  });
};

/** Last `n` non-empty lines of a command's output, for error excerpts. */
export function tailLines(text: string, n: number): string {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(-n).join('\n');
}

export function describeFailure(r: RunResult): string {
  if (r.timedOut) return `${r.argv[0]} timed out after ${Math.round(r.durationMs / 1000)}s (process tree killed)`;
  if (r.signal) return `${r.argv[0]} was killed by ${r.signal}`;
  return `${r.argv[0]} exited with code ${r.exitCode}`;
}
