// Progress while a long command runs (issue 22): a heartbeat line (what runs, for how long, its
// last line of output) every interval, and on a terminal a live line that is cleared at the end.
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { runCommand, type RunResult, type Runner } from '../../src/util/exec.js';
import { describeArgv, lastLineTracker, withHeartbeat, type Timers } from '../../src/util/heartbeat.js';
import { createLogger } from '../../src/util/log.js';

const SLOW_TALKER = fileURLToPath(new URL('../fixtures/bin/slow-talker.sh', import.meta.url));

/** Timers the test fires by hand, and a clock it moves. */
function manualTime() {
  let t = 0;
  const live = new Map<number, { fn: () => void; ms: number }>();
  let next = 1;
  const timers: Timers = {
    setInterval: (fn, ms) => {
      live.set(next, { fn, ms });
      return next++;
    },
    clearInterval: (h) => void live.delete(h as number),
  };
  return {
    timers,
    now: () => t,
    /** Moves the clock by `ms` and fires every interval that is due on the way, in order. */
    advance(ms: number) {
      for (let step = 0; step < ms; step += 100) {
        t += 100;
        for (const { fn, ms: every } of [...live.values()]) if (t % every === 0) fn();
      }
    },
    pending: () => live.size,
  };
}

describe('withHeartbeat', () => {
  it('says what runs, for how long and its last output line, every interval; nothing once it ended', async () => {
    const time = manualTime();
    const lines: string[] = [];
    let finish!: (r: RunResult) => void;
    let talk!: (s: string) => void;
    const slow: Runner = (argv, opts) => new Promise((resolve) => {
      talk = (s) => opts.onOutput?.(Buffer.from(s), 'stderr');
      finish = resolve;
    });
    const run = withHeartbeat(slow, { logger: createLogger({ write: (l) => lines.push(l) }), intervalMs: 30_000, now: time.now, timers: time.timers });
    const p = run(['nix-store', '-r', '/nix/store/abc-system.drv', '--keep-going'], { timeoutMs: 1000 });
    time.advance(29_900);
    expect(lines).toEqual([]);
    time.advance(100);
    expect(lines).toEqual(['running    nix-store -r /nix/store/abc-system.drv --keep-going (30s)\n']);
    talk("building '/nix/store/xyz-hello.drv'...\n");
    talk('\x1b[31mcopying path\x1b[0m 12/');
    time.advance(30_000);
    expect(lines[1]).toBe('running    nix-store -r /nix/store/abc-system.drv --keep-going (1m) — copying path 12/\n');
    talk('40\n\n');
    time.advance(30_000);
    expect(lines[2]).toMatch(/\(1m30s\) — copying path 12\/40\n$/);
    finish({ argv: [], exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, durationMs: 0 });
    await p;
    expect(time.pending()).toBe(0);
    time.advance(60_000);
    expect(lines).toHaveLength(3);
  });

  it('on a terminal: a live line redrawn every second, cleared before each heartbeat and at the end', async () => {
    const time = manualTime();
    const lines: string[] = [];
    const tty: string[] = [];
    let finish!: (r: RunResult) => void;
    const slow: Runner = () => new Promise((resolve) => void (finish = resolve));
    const run = withHeartbeat(slow, { logger: createLogger({ write: (l) => lines.push(l) }), intervalMs: 3_000, live: { write: (s) => tty.push(s) }, now: time.now, timers: time.timers });
    const p = run(['sys-build'], { timeoutMs: 1000 });
    time.advance(2_000);
    expect(tty).toEqual(['\r\x1b[K… sys-build (1s)', '\r\x1b[K… sys-build (2s)']);
    time.advance(1_000);
    // The heartbeat clears the live line first (the log line starts at column 0), then it is redrawn.
    expect(tty.slice(2)).toEqual(['\r\x1b[K', '\r\x1b[K… sys-build (3s)']);
    expect(lines).toEqual(['running    sys-build (3s)\n']);
    finish({ argv: [], exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, durationMs: 0 });
    await p;
    expect(tty.at(-1)).toBe('\r\x1b[K');
  });

  it('a real command that sleeps and prints: heartbeats name it and show its latest line, its result is unchanged', async () => {
    const lines: string[] = [];
    const run = withHeartbeat(runCommand, { logger: createLogger({ write: (l) => lines.push(l) }), intervalMs: 150 });
    const r = await run([SLOW_TALKER, '3', '0.4'], { timeoutMs: 30_000 });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('building step 1 of 3\nbuilding step 2 of 3\nbuilding step 3 of 3\ncopying 3 paths');
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const l of lines) expect(l).toMatch(new RegExp(`^running    ${SLOW_TALKER.replace(/[/.]/g, '\\$&')} 3 0\\.4 \\([0-9.]+s\\)( — (building step [123] of 3|copying 3 paths))?\\n$`));
    expect(lines.some((l) => l.includes('— building step 2 of 3'))).toBe(true);
    expect(lines.some((l) => l.includes('— copying 3 paths'))).toBe(true);
  });
});

describe('helpers', () => {
  it('describeArgv shortens; lastLineTracker keeps the last non-empty, printable line', () => {
    expect(describeArgv(['a', 'b'])).toBe('a b');
    expect(describeArgv(['x'.repeat(200)], 20)).toBe(`${'x'.repeat(19)}…`);
    const t = lastLineTracker();
    expect(t.last()).toBeNull();
    t.push('one\ntw');
    expect(t.last()).toBe('tw');
    t.push('o\r\n   \n');
    expect(t.last()).toBe('two');
    t.push('50%\r60%\r');
    expect(t.last()).toBe('60%');
  });
});
