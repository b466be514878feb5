// `nixos-desync reboot`: reboots (through the logged stand-in command) only when a reboot is
// required and allowed; otherwise says why, and records the decision in the state under the lock.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rebootIfAllowed } from '../../src/reboot/command.js';
import { acquireLock } from '../../src/state/lock.js';
import { createStateStore } from '../../src/state/store.js';
import { createLogger } from '../../src/util/log.js';
import { rebootWorld, type RebootWorld } from '../helpers/reboot-world.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixos-desync-reboot-cmd-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A host booted on linux-1 whose boot default has linux-2: a reboot is required (kernel). */
async function needsReboot(reboot: Record<string, unknown> = {}): Promise<RebootWorld> {
  const w = await rebootWorld(dir, reboot);
  const a = await w.toplevel('system-a', 'linux-1');
  const b = await w.toplevel('system-b', 'linux-2');
  await w.boot(a);
  await w.setDefault(a);
  await w.setDefault(b);
  return w;
}

function run(w: RebootWorld, o: { dryRun?: boolean; now?: Date; alerts?: Parameters<typeof rebootIfAllowed>[0]['alerts'] } = {}) {
  const lines: string[] = [];
  const store = createStateStore(w.stateDir);
  const p = rebootIfAllowed({ config: w.config, store, run: w.run, logger: createLogger({ write: (l) => lines.push(l) }), env: {}, now: o.now ? () => o.now! : undefined, alerts: o.alerts ?? null }, { dryRun: o.dryRun });
  return { p, lines, store };
}

describe('nixos-desync reboot', () => {
  it('required and allowed: runs reboot.command once, writes the sentinel, records the decision', async () => {
    const w = await needsReboot();
    const { p, lines, store } = run(w);
    const out = await p;
    expect(out).toMatchObject({ rebooted: true, exitCode: 0, decision: { required: true, blocked: null } });
    expect(w.calls).toEqual([['stand-in-reboot', '--now']]);
    expect(lines.join('')).toMatch(/reboot required \(kernel: .*linux-1 → .*linux-2\).*rebooting now/);
    expect(await readFile(join(w.runDir, 'reboot-required'), 'utf8')).toMatch(/^kernel: /m);
    const st = (await store.readState({ repair: false })).value;
    expect(st.reboot.lastDecision).toMatchObject({ blocked: null });
  });

  it('no reboot required: does nothing, exit 0, no decision kept', async () => {
    const w = await rebootWorld(dir);
    const a = await w.toplevel('system-a', 'linux-1');
    await w.boot(a);
    await w.setDefault(a);
    const { p, lines, store } = run(w);
    expect(await p).toMatchObject({ rebooted: false, exitCode: 0, decision: { required: false } });
    expect(w.calls).toEqual([]);
    expect(lines.join('')).toMatch(/no reboot required/);
    expect((await store.readState({ repair: false })).value.reboot.lastDecision).toBeNull();
  });

  it('reboot.enable false: says so, exit 0, no reboot', async () => {
    const w = await needsReboot({ enable: false });
    const { p, lines } = run(w);
    expect(await p).toMatchObject({ rebooted: false, exitCode: 0, decision: { blocked: 'disabled' } });
    expect(w.calls).toEqual([]);
    expect(lines.join('')).toMatch(/reboot.enable is false/);
  });

  it('outside the window: waits for the next one (named), exit 0', async () => {
    const w = await needsReboot({ window: { start: '02:00', end: '05:00', timezone: 'UTC' } });
    const { p, lines, store } = run(w, { now: new Date('2026-12-03T12:00:00Z') });
    expect(await p).toMatchObject({ rebooted: false, exitCode: 0, decision: { blocked: 'window' } });
    expect(lines.join('')).toMatch(/outside the reboot window \(daily 02:00–05:00 UTC\): the next one opens 2026-12-04T02:00:00.000Z/);
    expect(w.calls).toEqual([]);
    expect((await store.readState({ repair: false })).value.reboot.lastDecision).toMatchObject({ blocked: 'window', at: '2026-12-03T12:00:00.000Z' });
    // Inside it, the same host reboots.
    expect((await run(w, { now: new Date('2026-12-04T02:30:00Z') }).p).rebooted).toBe(true);
    expect(w.calls).toHaveLength(1);
  });

  it('a matching alert fires, or Prometheus is unreachable: blocked, exit 1 (a failed unit to look at), recorded', async () => {
    const w = await needsReboot({ blockOnAlerts: { prometheus: 'http://127.0.0.1:9' } });
    const firing = run(w, { alerts: async () => ({ ok: true, matching: ['BackupRunning'] }) });
    expect(await firing.p).toMatchObject({ rebooted: false, exitCode: 1, decision: { blocked: 'alerts' } });
    expect(firing.lines.join('')).toMatch(/^warning: .*alerts matching reboot.blockOnAlerts.alertFilter fire: BackupRunning/m);
    expect((await firing.store.readState({ repair: false })).value.reboot.lastDecision?.blocked).toBe('alerts');
    const down = run(w, { alerts: async () => ({ ok: false, error: 'connection refused' }) });
    expect(await down.p).toMatchObject({ exitCode: 1, decision: { blocked: 'unreachable' } });
    expect(down.lines.join('')).toMatch(/cannot be asked for alerts \(connection refused\): blocked until it answers/);
    expect(w.calls).toEqual([]);
  });

  it('--dry-run: says what it would do, runs nothing, writes nothing, takes no lock', async () => {
    const w = await needsReboot();
    const store = createStateStore(w.stateDir);
    await store.prepareDir();
    const lock = await acquireLock(store.paths.lock, 'upgrade');
    try {
      const { p, lines } = run(w, { dryRun: true });
      expect(await p).toMatchObject({ rebooted: false, exitCode: 0, decision: { blocked: null } });
      expect(lines.join('')).toMatch(/rebooting now \(dry run: not rebooting\)/);
      expect(w.calls).toEqual([]);
      await expect(readFile(join(w.runDir, 'reboot-required'))).rejects.toThrow();
    } finally {
      await lock.release();
    }
  });

  it('never while a run holds the lock (E_LOCKED: exit 75)', async () => {
    const w = await needsReboot();
    const store = createStateStore(w.stateDir);
    await store.prepareDir();
    const lock = await acquireLock(store.paths.lock, 'upgrade');
    try {
      await expect(run(w).p).rejects.toMatchObject({ code: 'E_LOCKED' });
      expect(w.calls).toEqual([]);
    } finally {
      await lock.release();
    }
  });

  it('a failing reboot command is an E_COMMAND error with its output', async () => {
    const w = await needsReboot();
    w.failCommand();
    await expect(run(w).p).rejects.toMatchObject({ code: 'E_COMMAND', message: expect.stringMatching(/reboot command \(stand-in-reboot --now\) failed: .*\n.*access denied/) });
  });
});
