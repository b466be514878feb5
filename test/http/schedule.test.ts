// `--schedule`: the calendar/interval subset, the next occurrence, and a scheduler that
// skips a run when the lock is held and never overlaps runs.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { nextOccurrence, parseSchedule, startScheduler } from '../../src/http/schedule.js';
import { DesyncError } from '../../src/util/errors.js';
import { createLogger } from '../../src/util/log.js';

const local = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0): Date => new Date(y, mo - 1, d, h, mi, s);

describe('parseSchedule / nextOccurrence', () => {
  it.each([
    ['daily', local(2026, 1, 10, 12), local(2026, 1, 11, 0)],
    ['hourly', local(2026, 1, 10, 12, 30), local(2026, 1, 10, 13)],
    ['minutely', local(2026, 1, 10, 12, 30, 5), local(2026, 1, 10, 12, 31)],
    ['weekly', local(2026, 1, 10, 12), local(2026, 1, 12, 0)], // 2026-01-10 is a Saturday
    ['*-*-* 04:40:00', local(2026, 1, 10, 4, 39, 59), local(2026, 1, 10, 4, 40)],
    ['*-*-* 04:40:00', local(2026, 1, 10, 4, 40), local(2026, 1, 11, 4, 40)],
    ['04:40', local(2026, 1, 10, 12), local(2026, 1, 11, 4, 40)],
    ['Mon,Thu 03:15', local(2026, 1, 10, 12), local(2026, 1, 12, 3, 15)],
    ['*:30', local(2026, 1, 10, 12, 31), local(2026, 1, 10, 13, 30)],
  ])('%s after %s', (spec, from, want) => {
    expect(nextOccurrence(parseSchedule(spec), from)).toEqual(want);
  });

  it('intervals count from the start', () => {
    const s = parseSchedule('6h');
    const start = local(2026, 1, 10, 1);
    expect(nextOccurrence(s, start, start)).toEqual(local(2026, 1, 10, 7));
    expect(nextOccurrence(s, local(2026, 1, 10, 8), start)).toEqual(local(2026, 1, 10, 13));
  });

  it('reads RandomizedDelaySec and rejects what it does not support', () => {
    expect(parseSchedule('daily;RandomizedDelaySec=1h').randomDelayMs).toBe(3_600_000);
    for (const bad of ['monthly', '25:00', '*-*-01 04:00', '10s', 'daily;Persistent=true', 'Fun 04:00', '']) {
      expect(() => parseSchedule(bad), bad).toThrow(DesyncError);
    }
  });
});

describe('startScheduler', () => {
  afterEach(() => void vi.useRealTimers());

  it('runs on time, logs and skips when the lock is held, never overlaps, and stops a run in flight', async () => {
    vi.useFakeTimers({ now: local(2026, 1, 10, 12, 0, 30) });
    const logs: Array<{ msg: string }> = [];
    const logger = createLogger({ format: 'json', write: (l) => void logs.push(JSON.parse(l) as { msg: string }) });
    let calls = 0;
    let aborted = false;
    const sched = startScheduler({
      schedule: parseSchedule('minutely;RandomizedDelaySec=10m'),
      logger,
      random: () => 0,
      run: (signal) => {
        calls += 1;
        if (calls === 1) return Promise.reject(new DesyncError('E_LOCKED', 'another nixos-desync run holds lock'));
        return new Promise((resolve) => signal.addEventListener('abort', () => {
          aborted = true;
          resolve({ exitCode: 1, result: 'failure' });
        }));
      },
    });
    expect(sched.nextAt).toEqual(local(2026, 1, 10, 12, 1));
    await vi.advanceTimersByTimeAsync(29_000);
    expect(calls).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toBe(1);
    expect(logs.map((l) => l.msg)).toContain('scheduled upgrade run skipped: another run holds the lock');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toBe(2);
    expect(sched.running).toBe(true);
    // The next occurrence comes while run 2 is still going: skipped, not overlapped.
    await vi.advanceTimersByTimeAsync(60_000);
    expect(calls).toBe(2);
    expect(logs.map((l) => l.msg)).toContain('scheduled upgrade run skipped: the previous one is still running');
    await sched.stop();
    expect(aborted).toBe(true);
    expect(sched.running).toBe(false);
  });

  it('adds the random delay', () => {
    vi.useFakeTimers({ now: local(2026, 1, 10, 12) });
    const sched = startScheduler({ schedule: parseSchedule('daily;RandomizedDelaySec=1h'), logger: createLogger({ write: () => undefined }), random: () => 0.5, run: () => Promise.resolve({ exitCode: 0, result: 'success' }) });
    expect(sched.nextAt).toEqual(local(2026, 1, 11, 0, 30));
    void sched.stop();
  });
});
