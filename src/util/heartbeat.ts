// Long commands (a system build may take hours) are never silent: while one runs, a progress
// line every `intervalMs` (30 s) says what runs, for how long, and the last line of its output;
// on a terminal a live line on stderr is also redrawn every second. A Runner wrapper, so every
// command of a run (Nix, the system build, checks, activation) gets it.
import { formatSeconds } from './duration.js';
import type { Runner } from './exec.js';
import type { Logger } from './log.js';

export const HEARTBEAT_MS = 30_000;
export const LIVE_MS = 1_000;

export interface Timers {
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

const realTimers: Timers = {
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (h) => clearInterval(h as ReturnType<typeof setInterval>),
};

export interface HeartbeatOptions {
  logger: Logger;
  /** Between two progress lines (default 30 s). */
  intervalMs?: number;
  /** A terminal: a live line written here (stderr), redrawn every `intervalMs` (default 1 s). */
  live?: { write: (s: string) => void; intervalMs?: number } | null;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
  timers?: Timers;
}

/** What a person reads about a command: its argv, shortened. */
export function describeArgv(argv: readonly string[], max = 100): string {
  const s = argv.join(' ');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

/** The last non-empty line of a stream, fed in chunks (a line still being written counts too). */
export function lastLineTracker(): { push(chunk: Buffer | string): void; last(): string | null } {
  let done: string | null = null;
  let partial = '';
  // Control characters (colours, cursor moves, \r progress bars) never reach our output.
  const clean = (l: string): string => l.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/[\x00-\x1f\x7f]/g, ' ').trim();
  return {
    push(chunk) {
      const lines = (partial + chunk.toString()).split(/\r\n|\n|\r/);
      partial = lines.pop()!.slice(-4096);
      for (const l of lines) if (clean(l) !== '') done = clean(l);
    },
    last: () => (clean(partial) !== '' ? clean(partial) : done),
  };
}

export function withHeartbeat(run: Runner, o: HeartbeatOptions): Runner {
  const timers = o.timers ?? realTimers;
  const now = o.now ?? (() => performance.now());
  const every = o.intervalMs ?? HEARTBEAT_MS;
  return async (argv, opts) => {
    const start = now();
    const out = lastLineTracker();
    const what = describeArgv(argv);
    const status = (): { elapsed: string; last: string | null } => ({ elapsed: formatSeconds((now() - start) / 1000), last: out.last() });
    let drawn = false;
    const clearLive = (): void => {
      if (drawn) o.live!.write('\r\x1b[K');
      drawn = false;
    };
    const beat = timers.setInterval(() => {
      const s = status();
      clearLive();
      o.logger.info(`running    ${what} (${s.elapsed})${s.last ? ` — ${s.last.slice(0, 200)}` : ''}`,
        { heartbeat: true, argv: [...argv], elapsedSeconds: Math.round((now() - start) / 1000), lastLine: s.last });
    }, every);
    const live = o.live
      ? timers.setInterval(() => {
        const s = status();
        o.live!.write(`\r\x1b[K… ${what} (${s.elapsed})${s.last ? ` — ${s.last.slice(0, 120)}` : ''}`);
        drawn = true;
      }, o.live.intervalMs ?? LIVE_MS)
      : null;
    try {
      return await run(argv, {
        ...opts,
        onOutput: (chunk, stream) => {
          out.push(chunk);
          opts.onOutput?.(chunk, stream);
        },
      });
    } finally {
      timers.clearInterval(beat);
      if (live !== null) timers.clearInterval(live);
      clearLive();
    }
  };
}
