// Durations as written in the config (`30s 10m 3h 14d 2w`), parsed once into milliseconds.
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Largest delay a Node timer honours (2^31-1 ms ≈ 24.8 days); larger ones fire after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export const DURATION_RE = /^([1-9][0-9]{0,8})(s|m|h|d|w)$/;

export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text);
  if (!m) return undefined;
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

/** Human form for progress lines and tables: 95s → "1m35s", 90061s → "1d1h". */
export function formatSeconds(totalSeconds: number): string {
  if (!Number.isFinite(totalSeconds) || totalSeconds < 0) return '-';
  if (totalSeconds < 10) return `${Math.round(totalSeconds * 10) / 10}s`;
  let s = Math.round(totalSeconds);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d > 0) return h > 0 ? `${d}d${h}h` : `${d}d`;
  if (h > 0) return m > 0 ? `${h}h${m}m` : `${h}h`;
  if (m > 0) return s > 0 ? `${m}m${s}s` : `${m}m`;
  return `${s}s`;
}
