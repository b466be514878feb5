// Runs one external program as argv (never a shell) in its own process group, so a timeout
// or an abort kills the whole tree it started, not just the direct child.
// execa does the spawning (argv only, `detached` for the group), the timeout, the abort
// (`cancelSignal`), SIGTERM then SIGKILL (`forceKillAfterDelay`) and the result/error
// objects; the few lines below marked "execa cannot" are what it has no option for.
import type { ResultPromise } from 'execa';
import { MAX_TIMER_MS } from './duration.js';
import { DesyncError } from './errors.js';

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
  /** Called with each chunk of output as it arrives (progress: util/heartbeat.ts). */
  onOutput?: (chunk: Buffer, stream: 'stdout' | 'stderr') => void;
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

/**
 * The last `max` bytes of a stream. execa cannot keep a tail: its `maxBuffer` keeps the head
 * and fails the command, while a long build must go on and its error is at the end.
 */
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

/** execa cannot signal a process group (it signals the pid only): kill(-pgid). */
function killGroup(pgid: number, sig: NodeJS.Signals | number): void {
  try {
    process.kill(-pgid, sig);
  } catch {
    /* already gone */
  }
}

/**
 * Groups started by this process that are still running, killed when we exit: execa's
 * `cleanup` does not apply to detached subprocesses (and would reach the leader only).
 */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const g of liveGroups) killGroup(g, 'SIGKILL');
  });
}

// execa (and its dependencies) load on the first command, not with the exporter's start-up.
let execaModule: Promise<typeof import('execa')> | undefined;

export const runCommand: Runner = async (argv, opts) => {
  const [cmd, ...args] = argv;
  if (!cmd) throw new DesyncError('E_COMMAND', 'empty argv');
  // execa would spawn and then kill at once: an already-aborted run must start nothing.
  if (opts.signal?.aborted) {
    return { argv: [...argv], exitCode: null, signal: 'SIGTERM', stdout: '', stderr: 'not started: the run was interrupted', timedOut: false, durationMs: 0 };
  }
  installExitHook();
  const { execa } = await (execaModule ??= import('execa'));
  const maxBytes = opts.maxOutputBytes ?? 256 * 1024;
  const child: ResultPromise = execa(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    extendEnv: false, // opts.env is the whole environment, as with spawn()
    stdin: 'ignore',
    buffer: false, // output goes to the tails below, never into one unbounded string
    detached: true, // own process group: the group id is the child's pid
    // Clamped: a longer delay would overflow Node's timer and fire at once (config refuses it).
    timeout: Math.min(opts.timeoutMs, MAX_TIMER_MS),
    cancelSignal: opts.signal,
    killSignal: 'SIGTERM',
    forceKillAfterDelay: opts.killGraceMs ?? 5000,
    reject: false,
  });
  const pgid = child.pid;
  if (pgid !== undefined) {
    // execa cannot signal a group: what its timeout, abort and force-kill send to the
    // leader goes to the whole group (execa's timers call subprocess.kill()).
    const execaKill = child.kill.bind(child) as (sig?: NodeJS.Signals | number) => boolean;
    child.kill = ((sig?: NodeJS.Signals | number | Error, error?: Error) => {
      killGroup(pgid, typeof sig === 'string' || typeof sig === 'number' ? sig : 'SIGTERM');
      return (execaKill as (s?: unknown, e?: unknown) => boolean)(sig, error);
    }) as typeof child.kill;
    // Once the leader is gone, whatever it left in its group goes too: a finished command
    // never leaves a process tree behind (and a grandchild holding the pipes open would
    // otherwise keep the run waiting).
    child.once('exit', () => {
      killGroup(pgid, 'SIGKILL');
      liveGroups.delete(pgid);
    });
    liveGroups.add(pgid);
    opts.onSpawn?.(pgid);
  }
  const out = new TailBuffer(maxBytes);
  const err = new TailBuffer(maxBytes);
  child.stdout?.on('data', (b: Buffer) => {
    out.push(b);
    opts.onOutput?.(b, 'stdout');
  });
  child.stderr?.on('data', (b: Buffer) => {
    err.push(b);
    opts.onOutput?.(b, 'stderr');
  });

  const r = await child;
  if (r.failed && r.exitCode === undefined && r.signal === undefined && !r.timedOut && !r.isCanceled) {
    // It never ran (execa's error carries the spawn error's code).
    const code = (r as { code?: string }).code;
    const what = code === 'ENOENT' ? `program not found: ${cmd}` : `cannot start ${cmd}: ${r.shortMessage}`;
    throw new DesyncError('E_COMMAND', what, { cause: r, details: { argv: [...argv] } });
  }
  return {
    argv: [...argv],
    exitCode: r.exitCode ?? null,
    signal: (r.signal as NodeJS.Signals | undefined) ?? null,
    stdout: out.toString(),
    stderr: err.toString(),
    timedOut: r.timedOut,
    durationMs: Math.round(r.durationMs),
  };
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
