// Reboot windows as a real schedule (DESIGN.md `reboot.window`): local wall-clock times in an
// IANA time zone, on some weekdays, possibly crossing midnight, DST-safe. Pure: no I/O, the
// clock is an argument.

import { HHMM_RE, WEEKDAYS, type Weekday } from '../config/reboot-terms.js';

export { HHMM_RE, isTimeZone, WEEKDAYS, type Weekday } from '../config/reboot-terms.js';

export interface RebootWindow {
  /** Days the window opens on (its start's local date); null = every day. */
  days: readonly Weekday[] | null;
  /** Local wall-clock `HH:MM` the window opens at. */
  start: string;
  /** Local wall-clock `HH:MM` it closes at; at or before `start` = the next day (crosses midnight). */
  end: string;
  /** IANA time zone; null = the host's (TZ, else /etc/localtime). */
  timezone: string | null;
}

export interface WindowSpan {
  start: Date;
  end: Date;
}

const DAY_MS = 86_400_000;

export function hostTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(tz, f);
  }
  return f;
}

/** The wall clock in `tz` at instant `ms`, as if it were UTC (ms since the epoch). */
function wallClock(ms: number, tz: string): number {
  const p: Record<string, number> = {};
  for (const part of formatter(tz).formatToParts(new Date(ms))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour! % 24, p.minute!, p.second!);
}

/** UTC offset of `tz` at instant `ms`, in ms (wall clock minus UTC). */
export function offsetAt(ms: number, tz: string): number {
  const whole = Math.floor(ms / 1000) * 1000;
  return wallClock(whole, tz) - whole;
}

/**
 * The instant a local wall-clock time (`local`: ms as if UTC) happens in `tz`. A time that
 * happens twice (DST ends) is its first occurrence; a time that does not exist (DST starts) is
 * read with the offset before the gap, i.e. it lands as far after the gap's start as it was
 * written (02:30 in a 02:00→03:00 gap is 03:30) — the "compatible" rule of Temporal and RFC 5545.
 */
export function zonedInstant(local: number, tz: string): number {
  const before = offsetAt(local - DAY_MS, tz);
  const after = offsetAt(local + DAY_MS, tz);
  const valid = [...new Set([before, after])].map((o) => local - o).filter((t) => offsetAt(t, tz) === local - t);
  if (valid.length > 0) return Math.min(...valid);
  return local - before;
}

function minutesOf(hhmm: string): number {
  const m = HHMM_RE.exec(hhmm);
  if (!m) throw new RangeError(`not a HH:MM time: ${hhmm}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

/** The window that opens on the local date `y-m-d` (month 0-based), or null when that day is not one of `days`. */
function spanOn(w: RebootWindow, tz: string, y: number, m: number, d: number): WindowSpan | null {
  const day = Date.UTC(y, m, d);
  if (w.days !== null && !w.days.includes(WEEKDAYS[(new Date(day).getUTCDay() + 6) % 7]!)) return null;
  const s = minutesOf(w.start);
  const e = minutesOf(w.end);
  const start = zonedInstant(day + s * 60_000, tz);
  const end = zonedInstant(day + (e > s ? e : e + 1440) * 60_000, tz);
  // A window swallowed by a DST gap (e.g. 02:10–02:40 on the day clocks jump 02:00→03:00) would
  // be empty: it then lasts its written length from where it starts.
  return { start: new Date(start), end: new Date(end > start ? end : start + ((e > s ? e : e + 1440) - s) * 60_000) };
}

/** Windows opening on local dates from `from` days before `at`'s local date to `to` days after. */
function spansAround(w: RebootWindow, at: number, from: number, to: number): WindowSpan[] {
  const tz = w.timezone ?? hostTimeZone();
  const local = new Date(wallClock(at, tz));
  const out: WindowSpan[] = [];
  for (let i = from; i <= to; i++) {
    const s = spanOn(w, tz, local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate() + i);
    if (s) out.push(s);
  }
  return out;
}

/** The window `now` is in (start ≤ now < end), or null. `window` null = always allowed. */
export function currentWindow(w: RebootWindow | null, now: Date): WindowSpan | null {
  if (w === null) return { start: now, end: new Date(now.getTime() + DAY_MS) };
  const t = now.getTime();
  // A window that crossed midnight may have opened on the local day before.
  return spansAround(w, t, -1, 0).find((s) => s.start.getTime() <= t && t < s.end.getTime()) ?? null;
}

/** The start of the first window that opens after `now` (strictly); null when `window` is null (no window to wait for). */
export function nextWindowStart(w: RebootWindow | null, now: Date): Date | null {
  if (w === null) return null;
  const t = now.getTime();
  // Every weekday set repeats within 7 days; 8 covers a start late on today's date.
  return spansAround(w, t, 0, 8).find((s) => s.start.getTime() > t)?.start ?? null;
}

/**
 * Windows that ended in (since, now]: how many chances to reboot went by. Without a window,
 * every day counts as one (a reboot allowed at any time that still has not happened).
 */
export function windowsPassed(w: RebootWindow | null, since: Date, now: Date, cap = 100): number {
  const [a, b] = [since.getTime(), now.getTime()];
  if (b <= a) return 0;
  if (w === null) return Math.min(cap, Math.floor((b - a) / DAY_MS));
  const tz = w.timezone ?? hostTimeZone();
  const local = new Date(wallClock(a, tz));
  let n = 0;
  // Local dates from the day before `since` (a window crossing midnight) until one opens after `now`.
  for (let i = -1; n < cap; i++) {
    const s = spanOn(w, tz, local.getUTCFullYear(), local.getUTCMonth(), local.getUTCDate() + i);
    if (s === null) {
      if (i > (b - a) / DAY_MS + 9) break;
      continue;
    }
    if (s.start.getTime() > b) break;
    const end = s.end.getTime();
    if (end > a && end <= b) n++;
  }
  return Math.min(n, cap);
}

/** One line for people: `Mon,Tue 02:00–05:00 Europe/Berlin`. */
export function describeWindow(w: RebootWindow | null): string {
  if (w === null) return 'any time';
  return `${w.days === null ? 'daily' : w.days.join(',')} ${w.start}–${w.end} ${w.timezone ?? `${hostTimeZone()} (host time zone)`}`;
}
