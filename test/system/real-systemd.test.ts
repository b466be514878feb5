// src/system (the health gate) and the upgrade-unit collector (src/watch/unit-status.ts,
// src/metrics/upgrade-unit.ts) against a real systemd (test/helpers/systemd.ts): the program
// runs on the host, its `systemctl` is the container's through the wrappers on its PATH.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createNixosSystem } from '../../src/system/nixos.js';
import { runCommand } from '../../src/util/exec.js';
import { createUnitStatusReader, isRunning } from '../../src/watch/unit-status.js';
import { upgradeUnitCollector } from '../../src/metrics/upgrade-unit.js';
import type { CollectContext } from '../../src/metrics/collector.js';
import { bootSystemd, requireSystemd, type SystemdContainer } from '../helpers/systemd.js';

const ok = requireSystemd();

const TOP = '/nix/store/00000000000000000000000000000000-nixos-system-new';
const PREV = '/nix/store/11111111111111111111111111111111-nixos-system-old';

const UNITS = {
  // Failed before the activation: the baseline, not the new system's fault.
  'old-broken.service': '[Service]\nType=oneshot\nExecStart=/bin/false\n',
  // Fails right after it started.
  'app-crash.service': '[Service]\nExecStart=/bin/sh -c "sleep 0.2; echo crashing; exit 3"\n',
  // Fails late: 2 s after it started, within a 4 s settle.
  'app-late.service': '[Service]\nExecStart=/bin/sh -c "sleep 2; echo late failure; exit 1"\n',
  'app-ok.service': '[Service]\nExecStart=/bin/sleep infinity\n',
};

// An "activation" is the argv escape hatch starting the new system's units, as
// switch-to-configuration would.
describe.skipIf(!ok)('health gate against a real systemd', () => {
  let c: SystemdContainer;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    c = await bootSystemd({ units: UNITS });
    env = { PATH: `${c.wrappers(['systemctl'])}:${process.env.PATH}` };
  });
  afterAll(() => c?.stop());
  afterEach(async () => {
    await c.systemctl('stop', 'app-crash.service', 'app-late.service', 'app-ok.service');
    await c.systemctl('reset-failed', 'app-crash.service', 'app-late.service');
  });

  /** A SystemSide whose activation starts `units` in the container. */
  function side(settle: string, units: string[], ignoreUnits: string[] = []) {
    const config = parseConfig({
      system: { activate: ['systemctl', 'start', ...units] },
      health: { settle, failedUnits: true, ignoreUnits },
      timeouts: { health: '30s' },
    });
    return createNixosSystem({ config, run: runCommand, env });
  }

  /** The baseline as the loop takes it before an activation: old-broken.service has failed. */
  async function baseline(sys: ReturnType<typeof side>): Promise<string[]> {
    await c.systemctl('start', 'old-broken.service');
    const b = await sys.failedUnits({ timeoutMs: 10_000 });
    expect(b).toEqual(['old-broken.service']);
    return b;
  }

  it('a unit that fails right after the activation fails the gate, with its `systemctl status`; the baseline does not', async () => {
    const sys = side('1s', ['app-ok.service', 'app-crash.service']);
    const before = await baseline(sys);
    expect(await sys.activate(TOP, { timeoutMs: 10_000 })).toMatch(/ok$/);
    const report = await sys.health(TOP, PREV, before, {});
    expect(report.ok).toBe(false);
    expect(report.failures.map((f) => [f.kind, f.name, f.reason])).toEqual([['unit', 'app-crash.service', 'failed after the activation']]);
    expect(report.failures[0]!.tail).toMatch(/status=3/);
    expect(report.failures[0]!.tail).toMatch(/crashing/); // the unit's journal lines
  });

  it('a unit that fails late, within health.settle, fails the gate; checked before it failed, the gate passed', async () => {
    const early = side('0s', ['app-late.service']);
    const before = await baseline(early);
    await early.activate(TOP, { timeoutMs: 10_000 });
    expect((await early.health(TOP, PREV, before, {})).ok).toBe(true); // not failed yet: why settle exists
    await c.systemctl('stop', 'app-late.service');

    const settled = side('4s', ['app-late.service']);
    await settled.activate(TOP, { timeoutMs: 10_000 });
    const t0 = Date.now();
    const report = await settled.health(TOP, PREV, before, {});
    expect(Date.now() - t0).toBeGreaterThanOrEqual(4000);
    expect(report.ok).toBe(false);
    expect(report.failures.map((f) => f.name)).toEqual(['app-late.service']);
    expect(report.failures[0]!.tail).toMatch(/late failure/);
  });

  it('healthy: units failed before the activation (the baseline) and ignoreUnits do not count', async () => {
    const sys = side('1s', ['app-ok.service']);
    const before = await baseline(sys);
    await sys.activate(TOP, { timeoutMs: 10_000 });
    const report = await sys.health(TOP, PREV, before, {});
    expect(report).toMatchObject({ ok: true, failures: [] });
    // The same baseline, given as empty, would have failed the gate: the baseline is what spares it.
    expect((await sys.health(TOP, PREV, [], {})).failures.map((f) => f.name)).toEqual(['old-broken.service']);

    const ignoring = side('1s', ['app-ok.service', 'app-crash.service'], ['app-cr*']);
    await ignoring.activate(TOP, { timeoutMs: 10_000 });
    expect(await ignoring.health(TOP, PREV, before, {})).toMatchObject({ ok: true, failures: [] });
  });
});

/** A oneshot upgrade unit with the timer that keeps it loaded (as NixOS's upgrade timer does). */
function upgradeUnit(name: string, script: string): Record<string, string> {
  return {
    [`${name}.service`]: `[Unit]\nDescription=${name}\n[Service]\nType=oneshot\nExecStart=/bin/sh -c "${script}"\n`,
    [`${name}.timer`]: '[Timer]\nOnCalendar=2099-01-01\n[Install]\nWantedBy=timers.target\n',
  };
}

describe.skipIf(!ok)('upgrade-unit collector (`systemctl show`) against a real systemd', () => {
  let c: SystemdContainer;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    c = await bootSystemd({
      units: {
        ...upgradeUnit('upgrade-ok', 'sleep 0.5'),
        ...upgradeUnit('upgrade-fail', 'sleep 0.2; exit 3'),
        ...upgradeUnit('upgrade-slow', 'sleep 60'),
        // No timer: once finished, nothing references it.
        'orphan.service': '[Service]\nType=oneshot\nExecStart=/bin/true\n',
      },
    });
    env = { PATH: `${c.wrappers(['systemctl'])}:${process.env.PATH}` };
    const timers = await c.systemctl('start', 'upgrade-ok.timer', 'upgrade-fail.timer', 'upgrade-slow.timer');
    expect(timers.exitCode).toBe(0);
  });
  afterAll(() => c?.stop());

  const reader = (unit: string) => createUnitStatusReader({ unit, env, ttlMs: 0 });

  /** The collector's samples for `unit`, as a scrape emits them. */
  async function scrape(unit: string): Promise<{ error: string | null; samples: Record<string, number> }> {
    const col = upgradeUnitCollector({ unit, env, ttlMs: 0 });
    await col.prepare!();
    const samples: Record<string, number> = {};
    const error = col.collect({} as CollectContext, (name, labels, value) => {
      expect(labels).toEqual({ unit });
      samples[name.replace('nixos_desync_upgrade_unit_', '')] = value;
    });
    return { error, samples };
  }

  it('a oneshot that succeeded: last run success 1, its start time and duration from ExecMain* timestamps', async () => {
    const t0 = Date.now() / 1000;
    expect((await c.systemctl('start', 'upgrade-ok.service')).exitCode).toBe(0);
    const r = reader('upgrade-ok.service');
    await r.refresh();
    expect(r.error).toBeNull();
    expect(r.status).toMatchObject({ loadState: 'loaded', activeState: 'inactive', result: 'success', execMainStatus: 0 });
    expect(r.lastFinished!.success).toBe(true);
    expect(r.lastFinished!.startedAt).toBeGreaterThan(t0 - 2);
    expect(r.lastFinished!.startedAt).toBeLessThan(Date.now() / 1000 + 2);
    expect(r.lastFinished!.durationSeconds).toBeGreaterThanOrEqual(0.45);
    expect(r.lastFinished!.durationSeconds).toBeLessThan(5);
    const { error, samples } = await scrape('upgrade-ok.service');
    expect(error).toBeNull();
    expect(samples).toMatchObject({ last_run_success: 1, running: 0 });
    expect(samples.last_run_timestamp_seconds).toBe(r.lastFinished!.startedAt);
  });

  it('a oneshot that failed: success 0, Result exit-code, ExecMainStatus 3', async () => {
    expect((await c.systemctl('start', 'upgrade-fail.service')).exitCode).not.toBe(0);
    const r = reader('upgrade-fail.service');
    await r.refresh();
    expect(r.status).toMatchObject({ activeState: 'failed', result: 'exit-code', execMainStatus: 3 });
    expect(r.lastFinished).toMatchObject({ success: false });
    expect((await scrape('upgrade-fail.service')).samples).toMatchObject({ last_run_success: 0, running: 0 });
  });

  it('a oneshot still running: `activating`, running 1, no finished run yet', async () => {
    expect((await c.systemctl('start', '--no-block', 'upgrade-slow.service')).exitCode).toBe(0);
    const r = reader('upgrade-slow.service');
    for (let i = 0; i < 100 && r.status?.activeState !== 'activating'; i++) {
      await new Promise((res) => setTimeout(res, 50));
      await r.refresh();
    }
    expect(r.status).toMatchObject({ activeState: 'activating' });
    expect(isRunning(r.status!)).toBe(true);
    expect(r.lastFinished).toBeNull();
    const { samples } = await scrape('upgrade-slow.service');
    expect(samples).toEqual({ running: 1 });
    await c.systemctl('stop', 'upgrade-slow.service');
  });

  it('pitfall: a finished oneshot nothing references is unloaded, and show reports no run at all', async () => {
    expect((await c.systemctl('start', 'orphan.service')).exitCode).toBe(0);
    const r = reader('orphan.service');
    await r.refresh();
    expect(r.error).toBeNull();
    expect(r.status).toMatchObject({ activeState: 'inactive', startedAt: null, exitedAt: null });
    expect(r.lastFinished).toBeNull();
  });

  it('a unit that does not exist fails the collector (collector_success 0), naming the key to check', async () => {
    const { error, samples } = await scrape('no-such-upgrade.service');
    expect(error).toMatch(/not found \(LoadState=not-found\): check exporter\.upgradeUnit/);
    expect(samples).toEqual({});
  });
});
