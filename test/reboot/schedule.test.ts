import { describe, expect, it } from 'vitest';
import { currentWindow, describeWindow, nextWindowStart, offsetAt, windowsPassed, zonedInstant, type RebootWindow } from '../../src/reboot/schedule.js';

const at = (iso: string): Date => new Date(iso);
const win = (w: Partial<RebootWindow>): RebootWindow => ({ days: null, start: '02:00', end: '05:00', timezone: 'UTC', ...w });

describe('zonedInstant', () => {
  it('maps a plain local time with the zone offset', () => {
    expect(new Date(zonedInstant(Date.UTC(2026, 0, 15, 2, 0), 'Europe/Berlin')).toISOString()).toBe('2026-01-15T01:00:00.000Z');
    expect(new Date(zonedInstant(Date.UTC(2026, 6, 15, 2, 0), 'Europe/Berlin')).toISOString()).toBe('2026-07-15T00:00:00.000Z');
  });
  it('a time inside the spring-forward gap lands after it (Berlin 2026-03-29 02:30 → 03:30 CEST)', () => {
    expect(new Date(zonedInstant(Date.UTC(2026, 2, 29, 2, 30), 'Europe/Berlin')).toISOString()).toBe('2026-03-29T01:30:00.000Z');
  });
  it('a time that happens twice is its first occurrence (New York 2026-11-01 01:30 EDT)', () => {
    expect(new Date(zonedInstant(Date.UTC(2026, 10, 1, 1, 30), 'America/New_York')).toISOString()).toBe('2026-11-01T05:30:00.000Z');
  });
  it('offsetAt follows the zone rules', () => {
    expect(offsetAt(Date.parse('2026-03-29T00:59:59Z'), 'Europe/Berlin')).toBe(3600_000);
    expect(offsetAt(Date.parse('2026-03-29T01:00:00Z'), 'Europe/Berlin')).toBe(7200_000);
  });
});

describe('currentWindow / nextWindowStart', () => {
  it('null window: always open, no next start to wait for', () => {
    expect(currentWindow(null, at('2026-01-01T12:00:00Z'))).not.toBeNull();
    expect(nextWindowStart(null, at('2026-01-01T12:00:00Z'))).toBeNull();
  });

  it('a same-day window: inside, at the edges, outside', () => {
    const w = win({});
    expect(currentWindow(w, at('2026-01-05T01:59:59Z'))).toBeNull();
    expect(currentWindow(w, at('2026-01-05T02:00:00Z'))?.start.toISOString()).toBe('2026-01-05T02:00:00.000Z');
    expect(currentWindow(w, at('2026-01-05T04:59:59Z'))?.end.toISOString()).toBe('2026-01-05T05:00:00.000Z');
    expect(currentWindow(w, at('2026-01-05T05:00:00Z'))).toBeNull();
    expect(nextWindowStart(w, at('2026-01-05T01:00:00Z'))?.toISOString()).toBe('2026-01-05T02:00:00.000Z');
    expect(nextWindowStart(w, at('2026-01-05T03:00:00Z'))?.toISOString()).toBe('2026-01-06T02:00:00.000Z');
  });

  it('crossing midnight: 22:00–04:00 is open after midnight, as the window of the day before', () => {
    const w = win({ start: '22:00', end: '04:00', days: ['Sat'] });
    // 2026-01-10 is a Saturday.
    expect(currentWindow(w, at('2026-01-10T23:00:00Z'))?.end.toISOString()).toBe('2026-01-11T04:00:00.000Z');
    const sundayNight = currentWindow(w, at('2026-01-11T03:30:00Z'));
    expect(sundayNight?.start.toISOString()).toBe('2026-01-10T22:00:00.000Z');
    // Sunday 22:00 opens nothing: the window belongs to Saturday.
    expect(currentWindow(w, at('2026-01-11T23:00:00Z'))).toBeNull();
    expect(nextWindowStart(w, at('2026-01-11T03:30:00Z'))?.toISOString()).toBe('2026-01-17T22:00:00.000Z');
  });

  it('days: only the listed weekdays open a window, the next one may be days away', () => {
    const w = win({ days: ['Tue', 'Thu'] });
    // 2026-01-05 is a Monday.
    expect(currentWindow(w, at('2026-01-05T03:00:00Z'))).toBeNull();
    expect(currentWindow(w, at('2026-01-06T03:00:00Z'))).not.toBeNull();
    expect(nextWindowStart(w, at('2026-01-06T03:00:00Z'))?.toISOString()).toBe('2026-01-08T02:00:00.000Z');
    expect(nextWindowStart(w, at('2026-01-08T06:00:00Z'))?.toISOString()).toBe('2026-01-13T02:00:00.000Z');
  });

  it('Europe/Berlin spring forward: a 02:00–05:00 window opens at 03:00 CEST and still closes at 05:00', () => {
    const w = win({ timezone: 'Europe/Berlin' });
    // 2026-03-29: 02:00 CET → 03:00 CEST; 02:00 does not exist.
    const start = nextWindowStart(w, at('2026-03-28T12:00:00Z'));
    expect(start?.toISOString()).toBe('2026-03-29T01:00:00.000Z');
    const span = currentWindow(w, at('2026-03-29T02:00:00Z'));
    expect(span?.end.toISOString()).toBe('2026-03-29T03:00:00.000Z');
    // The day before and after keep their wall clock.
    expect(nextWindowStart(w, at('2026-03-27T12:00:00Z'))?.toISOString()).toBe('2026-03-28T01:00:00.000Z');
    expect(nextWindowStart(w, at('2026-03-29T12:00:00Z'))?.toISOString()).toBe('2026-03-30T00:00:00.000Z');
  });

  it('Europe/Berlin fall back: 02:00–05:00 opens at the first 02:00 and lasts 4 hours', () => {
    const w = win({ timezone: 'Europe/Berlin' });
    // 2026-10-25: 03:00 CEST → 02:00 CET; 02:00–03:00 happens twice.
    const span = currentWindow(w, at('2026-10-25T01:30:00Z'));
    expect(span?.start.toISOString()).toBe('2026-10-25T00:00:00.000Z');
    expect(span?.end.toISOString()).toBe('2026-10-25T04:00:00.000Z');
    expect(currentWindow(w, at('2026-10-25T03:59:00Z'))).not.toBeNull();
  });

  it('America/New_York spring forward: a window inside the gap still happens, at its written length', () => {
    // 2026-03-08: 02:00 EST → 03:00 EDT.
    const w = win({ timezone: 'America/New_York', start: '02:15', end: '02:45' });
    const span = currentWindow(w, at('2026-03-08T07:20:00Z'));
    expect(span?.start.toISOString()).toBe('2026-03-08T07:15:00.000Z');
    expect(span?.end.toISOString()).toBe('2026-03-08T07:45:00.000Z');
    expect(nextWindowStart(w, at('2026-03-07T12:00:00Z'))?.toISOString()).toBe('2026-03-08T07:15:00.000Z');
  });

  it('America/New_York fall back, crossing midnight: 23:00–02:00 lasts 4 hours that night', () => {
    // 2026-11-01: 02:00 EDT → 01:00 EST.
    const w = win({ timezone: 'America/New_York', start: '23:00', end: '02:00' });
    const span = currentWindow(w, at('2026-11-01T06:30:00Z'));
    expect(span?.start.toISOString()).toBe('2026-11-01T03:00:00.000Z');
    expect(span?.end.toISOString()).toBe('2026-11-01T07:00:00.000Z');
  });

  it('end equal to start is a full day', () => {
    const w = win({ start: '04:00', end: '04:00', days: ['Mon'] });
    const span = currentWindow(w, at('2026-01-06T03:00:00Z'));
    expect(span?.start.toISOString()).toBe('2026-01-05T04:00:00.000Z');
  });
});

describe('windowsPassed', () => {
  it('counts window ends after `since`, up to now', () => {
    const w = win({});
    expect(windowsPassed(w, at('2026-01-05T06:00:00Z'), at('2026-01-05T07:00:00Z'))).toBe(0);
    expect(windowsPassed(w, at('2026-01-05T06:00:00Z'), at('2026-01-08T06:00:00Z'))).toBe(3);
    // A window already open at `since` counts once it ends.
    expect(windowsPassed(w, at('2026-01-05T03:00:00Z'), at('2026-01-05T05:00:00Z'))).toBe(1);
    expect(windowsPassed(win({ days: ['Sun'] }), at('2026-01-05T00:00:00Z'), at('2026-01-26T00:00:00Z'))).toBe(3);
  });
  it('without a window every day counts', () => {
    expect(windowsPassed(null, at('2026-01-01T00:00:00Z'), at('2026-01-03T12:00:00Z'))).toBe(2);
  });
});

it('describeWindow', () => {
  expect(describeWindow(win({ days: ['Mon', 'Sat'], timezone: 'Europe/Berlin' }))).toBe('Mon,Sat 02:00–05:00 Europe/Berlin');
  expect(describeWindow(null)).toBe('any time');
});
