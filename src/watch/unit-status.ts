// The monitored upgrade unit (exporter.upgradeUnit, e.g. nixos-upgrade.service) as
// `systemctl show` reports it. Polled, not watched: read at most once per `ttlMs`, one
// systemctl at a time, so a scrape storm never forks a process per scrape.
import { DesyncError, errorMessage } from '../util/errors.js';
import { runCommand, type Runner } from '../util/exec.js';

export const UNIT_PROPERTIES = ['Result', 'ExecMainStatus', 'ExecMainStartTimestamp', 'ExecMainExitTimestamp', 'ActiveState', 'LoadState'] as const;

export interface UnitStatus {
  unit: string;
  loadState: string;
  activeState: string;
  /** `Result`: `success`, `exit-code`, `signal`, `timeout`, `core-dump`, … */
  result: string;
  /** `ExecMainStatus`: the main process's exit status (or signal number). */
  execMainStatus: number | null;
  /** Unix seconds, null when the unit never ran (since boot). */
  startedAt: number | null;
  exitedAt: number | null;
}

/** The last run that finished (start and exit known): what the success/duration metrics describe. */
export interface FinishedRun {
  startedAt: number;
  durationSeconds: number;
  success: boolean;
}

const DAYS = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ';
const PRETTY_RE = new RegExp(`^(?:${DAYS})?([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\\.([0-9]{1,6}))? (UTC|GMT|[+-][0-9]{2}(?::?[0-9]{2})?)$`);

/**
 * A systemd timestamp as `systemctl show` prints it → Unix seconds; null for "never" (empty,
 * `n/a`, `0`). Forms: `Mon 2026-11-30 12:00:00 UTC` (pretty/utc), with `.UUUUUU` (us, us+utc),
 * `@1764504000` (unix), or a numeric UTC offset. A zone abbreviation other than UTC (CET,
 * -05 is fine, "CST" is ambiguous) is rejected: the caller asks systemctl for UTC.
 */
export function parseSystemdTimestamp(value: string): number | null {
  const v = value.trim();
  if (v === '' || v === 'n/a' || v === '0') return null;
  const unix = /^@([0-9]{1,12})(?:\.([0-9]{1,6}))?$/.exec(v);
  if (unix) return Number(unix[1]) + (unix[2] ? Number(`0.${unix[2]}`) : 0);
  const m = PRETTY_RE.exec(v);
  if (!m) throw new DesyncError('E_COMMAND', `unrecognised systemd timestamp ${JSON.stringify(v.slice(0, 80))}`);
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  let t = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) / 1000;
  if (frac) t += Number(`0.${frac}`);
  if (zone !== 'UTC' && zone !== 'GMT') {
    const z = /^([+-])([0-9]{2}):?([0-9]{2})?$/.exec(zone!)!;
    const offset = (Number(z[2]) * 60 + Number(z[3] ?? 0)) * 60;
    t -= z[1] === '+' ? offset : -offset;
  }
  if (!Number.isFinite(t)) throw new DesyncError('E_COMMAND', `invalid systemd timestamp ${JSON.stringify(v)}`);
  return t;
}

/** `Key=Value` lines of `systemctl show -p …` → the unit's status. */
export function parseSystemctlShow(unit: string, text: string): UnitStatus {
  const props = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) props.set(line.slice(0, i), line.slice(i + 1));
  }
  const missing = UNIT_PROPERTIES.filter((p) => !props.has(p) && p !== 'LoadState');
  if (missing.length > 0) throw new DesyncError('E_COMMAND', `systemctl show ${unit}: missing ${missing.join(', ')} in its output`);
  const status = props.get('ExecMainStatus')!.trim();
  return {
    unit,
    loadState: props.get('LoadState') ?? 'loaded',
    activeState: props.get('ActiveState')!,
    result: props.get('Result')!,
    execMainStatus: /^-?[0-9]+$/.test(status) ? Number(status) : null,
    startedAt: parseSystemdTimestamp(props.get('ExecMainStartTimestamp')!),
    exitedAt: parseSystemdTimestamp(props.get('ExecMainExitTimestamp')!),
  };
}

/** True while the unit's main process runs (an upgrade is a oneshot: `activating`). */
export function isRunning(s: UnitStatus): boolean {
  if (['activating', 'deactivating', 'reloading', 'refreshing'].includes(s.activeState)) return true;
  return s.activeState === 'active' && s.startedAt !== null && (s.exitedAt === null || s.exitedAt < s.startedAt);
}

/** The run this status says finished last, or null (never ran, or the first run is in flight). */
export function finishedRun(s: UnitStatus): FinishedRun | null {
  if (s.startedAt === null || s.exitedAt === null || s.exitedAt < s.startedAt) return null;
  return { startedAt: s.startedAt, durationSeconds: s.exitedAt - s.startedAt, success: s.result === 'success' && s.execMainStatus === 0 };
}

export interface UnitStatusReader {
  readonly unit: string;
  /** Re-reads when the last read is older than the TTL (single-flight); never rejects. */
  refresh(): Promise<void>;
  readonly status: UnitStatus | null;
  /** The last finished run seen (kept while a new run is in flight and across failed reads). */
  readonly lastFinished: FinishedRun | null;
  /** Why the last read failed, or null. */
  readonly error: string | null;
  readonly reads: number;
}

export interface UnitStatusReaderOptions {
  unit: string;
  /** The systemctl program (default `systemctl` from PATH; tests use a stand-in). */
  systemctl?: string;
  run?: Runner;
  ttlMs?: number;
  timeoutMs?: number;
  /** Monotonic milliseconds (tests). */
  clock?: () => number;
  env?: NodeJS.ProcessEnv;
}

export function createUnitStatusReader(opts: UnitStatusReaderOptions): UnitStatusReader {
  const run = opts.run ?? runCommand;
  const ttlMs = opts.ttlMs ?? 5000;
  const clock = opts.clock ?? (() => performance.now());
  const systemctl = opts.systemctl ?? 'systemctl';
  // UTC and the C locale whatever the service's environment says: parseable timestamps.
  const env = { PATH: opts.env?.PATH ?? process.env.PATH ?? '/run/current-system/sw/bin', TZ: 'UTC', LC_ALL: 'C', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' };
  const argv = [systemctl, 'show', '--timestamp=us+utc', `--property=${UNIT_PROPERTIES.join(',')}`, '--', opts.unit];
  let status: UnitStatus | null = null;
  let lastFinished: FinishedRun | null = null;
  let error: string | null = 'not read yet';
  let readAt = -Infinity;
  let inFlight: Promise<void> | null = null;
  let reads = 0;

  async function read(): Promise<void> {
    reads += 1;
    try {
      const r = await run(argv, { env, timeoutMs: opts.timeoutMs ?? 5000, maxOutputBytes: 64 * 1024 });
      if (r.timedOut) throw new DesyncError('E_TIMEOUT', `systemctl show ${opts.unit} timed out`);
      if (r.exitCode !== 0) {
        const why = r.stderr.trim().split('\n').pop() || `exit ${r.exitCode ?? r.signal}`;
        throw new DesyncError('E_COMMAND', `systemctl show ${opts.unit} failed: ${why.slice(0, 300)}`);
      }
      const s = parseSystemctlShow(opts.unit, r.stdout);
      if (s.loadState === 'not-found') throw new DesyncError('E_COMMAND', `unit ${opts.unit} not found (LoadState=not-found): check exporter.upgradeUnit`);
      status = s;
      lastFinished = finishedRun(s) ?? (isRunning(s) ? lastFinished : null);
      error = null;
    } catch (err) {
      // The unit's numbers are not served from a failed read: its collector reports 0.
      status = null;
      error = errorMessage(err);
    } finally {
      readAt = clock();
    }
  }

  return {
    unit: opts.unit,
    refresh() {
      if (clock() - readAt < ttlMs) return Promise.resolve();
      inFlight ??= read().finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
    get status() {
      return status;
    },
    get lastFinished() {
      return lastFinished;
    },
    get error() {
      return error;
    },
    get reads() {
      return reads;
    },
  };
}
