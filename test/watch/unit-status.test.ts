// `systemctl show` of the monitored upgrade unit: both timestamp forms, the unit's states
// (finished ok, failed, running, never ran, not found), failures of systemctl itself, and
// the cache that keeps a scrape storm from forking one systemctl per scrape.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createUnitStatusReader, finishedRun, isRunning, parseSystemctlShow, parseSystemdTimestamp } from '../../src/watch/unit-status.js';
import { FAILED_UPGRADE_UNIT, makeSystemctl, NO_SYSTEMD, setSystemctlFailing, setUnit } from '../fixtures/exporter/systemctl.js';

describe('parseSystemdTimestamp', () => {
  it.each([
    ['Mon 2026-11-30 12:00:00 UTC', 1796040000],
    ['Mon 2026-11-30 12:00:00.250000 UTC', 1796040000.25],
    ['2026-11-30 12:00:00 UTC', 1796040000],
    ['Mon 2026-11-30 13:00:00 +01:00', 1796040000],
    ['Mon 2026-11-30 07:00:00 -05', 1796040000],
    ['@1796040000', 1796040000],
    ['@1796040000.5', 1796040000.5],
  ])('%s', (text, want) => {
    expect(parseSystemdTimestamp(text)).toBe(want);
  });

  it.each(['', 'n/a', '0'])('%j means never', (text) => {
    expect(parseSystemdTimestamp(text)).toBeNull();
  });

  it.each(['Mon 2026-11-30 12:00:00 CET', 'yesterday', '@-5', '2026-11-30T12:00:00Z'])('%j is rejected, not guessed', (text) => {
    expect(() => parseSystemdTimestamp(text)).toThrow(/timestamp/);
  });
});

describe('parseSystemctlShow', () => {
  const show = (o: Record<string, string>): string => Object.entries(o).map(([k, v]) => `${k}=${v}`).join('\n');
  const base = { Result: 'success', ExecMainStartTimestamp: 'Mon 2026-11-30 04:00:00 UTC', ExecMainExitTimestamp: 'Mon 2026-11-30 04:10:00 UTC', ExecMainStatus: '0', LoadState: 'loaded', ActiveState: 'inactive' };

  it('a finished successful run', () => {
    const s = parseSystemctlShow('u.service', show(base));
    expect(isRunning(s)).toBe(false);
    expect(finishedRun(s)).toEqual({ startedAt: 1796011200, durationSeconds: 600, success: true });
  });

  it('a failed run (Result exit-code, status 1)', () => {
    const s = parseSystemctlShow('u.service', show({ ...base, Result: 'exit-code', ExecMainStatus: '1', ActiveState: 'failed' }));
    expect(finishedRun(s)!.success).toBe(false);
  });

  it('Result success with a non-zero status (SuccessExitStatus aside) is not a success', () => {
    expect(finishedRun(parseSystemctlShow('u.service', show({ ...base, ExecMainStatus: '2' })))!.success).toBe(false);
  });

  it('a run in flight: activating, exit timestamp reset by systemd', () => {
    const s = parseSystemctlShow('u.service', show({ ...base, ExecMainExitTimestamp: '', ActiveState: 'activating' }));
    expect(isRunning(s)).toBe(true);
    expect(finishedRun(s)).toBeNull();
  });

  it('a unit that never ran', () => {
    const s = parseSystemctlShow('u.service', show({ ...base, ExecMainStartTimestamp: 'n/a', ExecMainExitTimestamp: 'n/a' }));
    expect(isRunning(s)).toBe(false);
    expect(finishedRun(s)).toBeNull();
  });

  it('output without the asked properties is an error naming them', () => {
    expect(() => parseSystemctlShow('u.service', 'Result=success\n')).toThrow(/missing ExecMainStatus, ExecMainStartTimestamp/);
  });
});

describe('createUnitStatusReader with the stand-in systemctl', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const setup = async (): Promise<string> => {
    dir = await mkdtemp(join(tmpdir(), 'nixos-desync-unit-'));
    return makeSystemctl(dir, { 'nixos-upgrade.service': FAILED_UPGRADE_UNIT });
  };

  it('reads the failed last run, with µs precision', async () => {
    const systemctl = await setup();
    const r = createUnitStatusReader({ unit: 'nixos-upgrade.service', systemctl });
    await r.refresh();
    expect(r.error).toBeNull();
    expect(r.lastFinished).toEqual({ startedAt: 1768017600, durationSeconds: 750.5, success: false });
    expect(isRunning(r.status!)).toBe(false);
  });

  it('keeps the last finished run while a new one is in flight, then replaces it', async () => {
    const systemctl = await setup();
    let t = 0;
    const r = createUnitStatusReader({ unit: 'nixos-upgrade.service', systemctl, ttlMs: 5000, clock: () => t });
    await r.refresh();
    await setUnit(dir!, 'nixos-upgrade.service', { Result: 'success', ExecMainStartTimestamp: '@1768104000', ExecMainExitTimestamp: '', ExecMainStatus: '0', ActiveState: 'activating' });
    t += 5000;
    await r.refresh();
    expect(isRunning(r.status!)).toBe(true);
    expect(r.lastFinished).toEqual({ startedAt: 1768017600, durationSeconds: 750.5, success: false });
    await setUnit(dir!, 'nixos-upgrade.service', { Result: 'success', ExecMainStartTimestamp: '@1768104000', ExecMainExitTimestamp: '@1768104900', ExecMainStatus: '0', ActiveState: 'inactive' });
    t += 5000;
    await r.refresh();
    expect(r.lastFinished).toEqual({ startedAt: 1768104000, durationSeconds: 900, success: true });
  });

  it('reads at most once per TTL, and concurrent refreshes share one systemctl', async () => {
    const systemctl = await setup();
    let t = 0;
    const r = createUnitStatusReader({ unit: 'nixos-upgrade.service', systemctl, ttlMs: 5000, clock: () => t });
    await Promise.all(Array.from({ length: 10 }, () => r.refresh()));
    expect(r.reads).toBe(1);
    t = 4999;
    await r.refresh();
    expect(r.reads).toBe(1);
    t = 5000;
    await r.refresh();
    expect(r.reads).toBe(2);
  });

  it('a unit systemd does not know is an error naming the config key', async () => {
    const systemctl = await setup();
    const r = createUnitStatusReader({ unit: 'nixos-upgrad.service', systemctl });
    await r.refresh();
    expect(r.status).toBeNull();
    expect(r.error).toMatch(/nixos-upgrad\.service not found.*exporter\.upgradeUnit/);
  });

  it('systemctl failing (no systemd) is an error with its message, and recovers', async () => {
    const systemctl = await setup();
    let t = 0;
    const r = createUnitStatusReader({ unit: 'nixos-upgrade.service', systemctl, clock: () => t });
    await setSystemctlFailing(dir!, NO_SYSTEMD);
    await r.refresh();
    expect(r.status).toBeNull();
    expect(r.error).toMatch(/systemctl show nixos-upgrade\.service failed: Failed to connect to bus: Host is down/);
    await setSystemctlFailing(dir!, null);
    t += 10_000;
    await r.refresh();
    expect(r.error).toBeNull();
    expect(r.lastFinished?.success).toBe(false);
  });

  it('systemctl absent is an error, not a crash', async () => {
    const r = createUnitStatusReader({ unit: 'nixos-upgrade.service', systemctl: '/nonexistent/systemctl' });
    await r.refresh();
    expect(r.error).toMatch(/program not found: \/nonexistent\/systemctl/);
  });
});
