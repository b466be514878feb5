// `serve --schedule`: runs the upgrade loop in-process for hosts without a systemd timer.
// Spec (a subset of systemd.time): `minutely|hourly|daily|weekly`, `[Mon,Tue…] [*-*-*] HH:MM[:SS]`
// (local time), or an interval `30m|6h|1d`; optionally `;RandomizedDelaySec=DUR`. A held lock
// (a timer-started or manual run) skips that occurrence; runs never overlap.
import { DesyncError, errorMessage, isDesyncError } from '../util/errors.js';
import { parseDuration } from '../util/duration.js';
import type { Logger } from '../util/log.js';

export type Schedule =
  | { kind: 'interval'; everyMs: number; randomDelayMs: number; spec: string }
  | { kind: 'calendar'; weekdays: number[] | null; hours: number[]; minutes: number[]; second: number; randomDelayMs: number; spec: string };

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const ALL_HOURS = Array.from({ length: 24 }, (_, i) => i);
const ALL_MINUTES = Array.from({ length: 60 }, (_, i) => i);
const MAX_TIMER_MS = 2 ** 31 - 1;

const usage = (spec: string, why: string): DesyncError =>
  new DesyncError('E_USAGE', `invalid --schedule ${JSON.stringify(spec)}: ${why} (use hourly, daily, weekly, "*-*-* 04:40:00", "Mon,Thu 04:40", an interval like 6h, optionally followed by ";RandomizedDelaySec=30m")`);

export function parseSchedule(spec: string): Schedule {
  const [main = '', ...opts] = spec.split(';').map((p) => p.trim());
  let randomDelayMs = 0;
  for (const o of opts) {
    const m = /^RandomizedDelaySec=(.+)$/.exec(o);
    const ms = m ? parseDuration(m[1]!) : undefined;
    if (ms === undefined) throw usage(spec, `unknown option ${JSON.stringify(o)}`);
    randomDelayMs = ms;
  }
  const base = { randomDelayMs, spec };
  switch (main.toLowerCase()) {
    case 'minutely':
      return { kind: 'calendar', weekdays: null, hours: ALL_HOURS, minutes: ALL_MINUTES, second: 0, ...base };
    case 'hourly':
      return { kind: 'calendar', weekdays: null, hours: ALL_HOURS, minutes: [0], second: 0, ...base };
    case 'daily':
      return { kind: 'calendar', weekdays: null, hours: [0], minutes: [0], second: 0, ...base };
    case 'weekly':
      return { kind: 'calendar', weekdays: [1], hours: [0], minutes: [0], second: 0, ...base };
  }
  const every = parseDuration(main);
  if (every !== undefined) {
    if (every < 60_000) throw usage(spec, 'an interval must be at least 1m');
    return { kind: 'interval', everyMs: every, ...base };
  }
  const m = /^(?:([A-Za-z]{3}(?:,[A-Za-z]{3})*)\s+)?(?:\*-\*-\*\s+)?(\*|[0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?$/.exec(main);
  if (!m) throw usage(spec, 'not a supported calendar or interval');
  let weekdays: number[] | null = null;
  if (m[1]) {
    weekdays = m[1].toLowerCase().split(',').map((d) => DAYS.indexOf(d));
    if (weekdays.some((d) => d < 0)) throw usage(spec, 'weekdays are Mon,Tue,Wed,Thu,Fri,Sat,Sun');
  }
  const hours = m[2] === '*' ? ALL_HOURS : [Number(m[2])];
  const minute = Number(m[3]);
  const second = m[4] === undefined ? 0 : Number(m[4]);
  if (hours.some((h) => h > 23) || minute > 59 || second > 59) throw usage(spec, 'time out of range');
  return { kind: 'calendar', weekdays, hours, minutes: [minute], second, ...base };
}

/** The next occurrence strictly after `from` (local time), without the random delay. */
export function nextOccurrence(s: Schedule, from: Date, startedAt: Date = from): Date {
  if (s.kind === 'interval') {
    const n = Math.floor((from.getTime() - startedAt.getTime()) / s.everyMs) + 1;
    return new Date(startedAt.getTime() + n * s.everyMs);
  }
  const d = new Date(from.getTime());
  d.setMilliseconds(0);
  d.setSeconds(d.getSeconds() + 1);
  // At most 8 days of minutes are examined, jumping whole hours/days where possible.
  for (let i = 0; i < 8 * 24 * 60 + 2; i++) {
    if (s.weekdays && !s.weekdays.includes(d.getDay())) {
      d.setDate(d.getDate() + 1);
      d.setHours(0, 0, 0, 0);
      continue;
    }
    if (!s.hours.includes(d.getHours())) {
      d.setHours(d.getHours() + 1, 0, 0, 0);
      continue;
    }
    const candidate = new Date(d.getTime());
    candidate.setSeconds(s.second, 0);
    if (s.minutes.includes(d.getMinutes()) && candidate.getTime() > from.getTime()) return candidate;
    d.setMinutes(d.getMinutes() + 1, 0, 0);
  }
  throw new DesyncError('E_USAGE', `--schedule ${JSON.stringify(s.spec)} never fires`);
}

export interface SchedulerOptions {
  schedule: Schedule;
  /** One run of the loop; a held lock rejects with E_LOCKED. */
  run: (signal: AbortSignal) => Promise<{ exitCode: number; result: string }>;
  logger: Logger;
  now?: () => Date;
  random?: () => number;
}

export interface Scheduler {
  readonly nextAt: Date | null;
  readonly running: boolean;
  /** Stops the timer and aborts a run in flight; resolves when it ended. */
  stop(): Promise<void>;
}

export function startScheduler(opts: SchedulerOptions): Scheduler {
  const { schedule: s, logger: log } = opts;
  const now = opts.now ?? (() => new Date());
  const random = opts.random ?? Math.random;
  const startedAt = now();
  const ac = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  let nextAt: Date | null = null;
  let current: Promise<void> | null = null;
  let stopped = false;

  function arm(): void {
    if (stopped) return;
    const t = now();
    const at = new Date(nextOccurrence(s, t, startedAt).getTime() + Math.floor(random() * s.randomDelayMs));
    nextAt = at;
    log.info('next scheduled upgrade run', { at: at.toISOString(), schedule: s.spec });
    wait(at);
  }

  function wait(at: Date): void {
    const ms = Math.min(MAX_TIMER_MS, Math.max(0, at.getTime() - now().getTime()));
    timer = setTimeout(() => {
      timer = null;
      if (now().getTime() < at.getTime()) return wait(at);
      fire();
    }, ms);
  }

  function fire(): void {
    if (current) {
      log.warn('scheduled upgrade run skipped: the previous one is still running');
      return arm();
    }
    log.info('scheduled upgrade run starting', { schedule: s.spec });
    current = opts.run(ac.signal).then(
      (r) => log.info('scheduled upgrade run finished', { result: r.result, exitCode: r.exitCode }),
      (err: unknown) => {
        if (isDesyncError(err, 'E_LOCKED')) log.info('scheduled upgrade run skipped: another run holds the lock', { error: errorMessage(err) });
        else log.error('scheduled upgrade run failed', { error: errorMessage(err), code: (err as { code?: string }).code });
      },
    ).finally(() => {
      current = null;
    });
    arm();
  }

  arm();
  return {
    get nextAt() {
      return nextAt;
    },
    get running() {
      return current !== null;
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      timer = null;
      ac.abort();
      if (current) await current;
    },
  };
}
