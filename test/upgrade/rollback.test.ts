// Issue 18 items 1, 2 and 9 (rollback): a rollback is never cancelled by SIGTERM/SIGINT, is
// confirmed (current-system is the target again) or else `rollback_failed`, its target is
// GC-rooted before the activation, its verdict survives a kill -9 inside it, and durations
// come from the monotonic clock. In-process loop with the fake Nix of test/helpers.
import { describe, it, expect, beforeEach, afterEach, vi } from 'vitest';
import { cp, mkdtemp, readFile, readlink, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStateStore } from '../../src/state/store.js';
import type { RunOptions, RunResult } from '../../src/util/exec.js';
import type { PendingCall } from '../helpers/fake-nix.js';
import { fail, ok } from '../helpers/fake-nix.js';
import { answerSwitch, drive, harness, leaveResult, makeConfig, switchTo, type Harness, type TestConfig } from '../helpers/upgrade-harness.js';
import { createShield, type Shield } from '../../src/util/shield.js';
import { createSignalHandler } from '../../src/cli/signals.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-rollback-'));
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(dir, { recursive: true, force: true });
});

/** The harness's config with one health check, `hc`. */
const withCheck = (): TestConfig => makeConfig(join(dir, 'state'), { health: { settle: '0s', failedUnits: false, checks: [['hc']] } });
const running = (config: TestConfig): Promise<string> => realpath(join(config.runDir, 'current-system'));
const readState = async (config: TestConfig) => (await createStateStore(config.stateDir).readState({ repair: false })).value;
const readJournal = async (config: TestConfig) => (await createStateStore(config.stateDir).readJournal({ repair: false })).value;
const killed = (argv: readonly string[]): RunResult => ({ ...fail(argv, ''), exitCode: null, signal: 'SIGTERM' });

/** A run on `rev` released up to its health check (`hc`), which is returned pending. */
async function startToHealthCheck(config: TestConfig, rev: string, opts: { signal?: AbortSignal; shield?: Shield } = {}) {
  const h = harness(config);
  const p = h.start(opts);
  await drive(h, rev);
  const b = await h.q.next('run');
  await leaveResult(b.args[1] as RunOptions, config.stateDir);
  b.resolve(ok(['sys-build']));
  const bad = await answerSwitch(await h.q.next('run'), config.stateDir);
  const check = await h.q.next('run');
  expect(check.args[0]).toEqual(['hc']);
  return { h, p, bad, check };
}

/** A healthy, committed first run on rev1 (rev1's system runs), then a run on `rev` released up to its health check. */
async function toHealthCheck(config: TestConfig, rev: string, opts: { signal?: AbortSignal; shield?: Shield } = {}) {
  const first = await startToHealthCheck(config, 'rev1');
  first.check.resolve(ok(['hc']));
  expect((await first.p).result).toBe('success');
  const good = await running(config);
  const committedLink = await readlink(join(config.stateDir, 'pins'));
  return { good, committedLink, ...(await startToHealthCheck(config, rev, opts)) };
}

/** The next call must be the rollback: sys-switch of `target` with NIXOS_DESYNC_ROLLBACK=1. */
async function rollbackCall(h: Harness, target: string): Promise<PendingCall> {
  const r = await h.q.next('run');
  const o = r.args[1] as RunOptions;
  expect(r.args[0]).toEqual(['sys-switch']);
  expect(o.env).toMatchObject({ NIXOS_DESYNC_TOPLEVEL: target, NIXOS_DESYNC_ROLLBACK: '1' });
  return r;
}

/** Copies the state dir as a kill -9 leaves it (its lock owned by a dead process). */
async function crashCopy(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true, verbatimSymlinks: true });
  const lock = JSON.parse(await readFile(join(to, 'lock'), 'utf8')) as Record<string, unknown>;
  const pid = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
  await writeFile(join(to, 'lock'), JSON.stringify({ ...lock, pid }));
}

describe('a signal after the activation never cancels the rollback (#18.1)', () => {
  it('SIGTERM during the health gate: the rollback runs without the aborted signal, is confirmed, and the candidate is not rejected', async () => {
    const config = withCheck();
    const ac = new AbortController();
    const { h, p, good, check } = await toHealthCheck(config, 'rev2', { signal: ac.signal });
    ac.abort();
    check.resolve(killed(['hc'])); // the check was killed with the run's process groups
    const r = await rollbackCall(h, good);
    expect((r.args[1] as RunOptions).signal?.aborted ?? false).toBe(false);
    await answerSwitch(r, config.stateDir);
    const res = await p;
    expect(res).toMatchObject({ exitCode: 1, result: 'failure', error: { code: 'E_INTERRUPTED' } });
    expect(res.error!.message).toMatch(/activated again; the previous pin set was restored \(interrupted: the candidate is not rejected\)/);
    expect(await running(config)).toBe(good);
    const st = await readState(config);
    expect(st.rejected).toEqual([]);
    expect(st.rollbacks.total).toEqual({ activation: 0, health: 0 });
    expect(st.health.lastSuccess).toBe(true); // the cut-short gate is not recorded as a verdict
    expect(await readJournal(config)).toBeNull(); // confirmed: nothing left for recovery
  });

  it('argv mode: a signal during the activation is no activation verdict (rolled back, candidate not rejected)', async () => {
    const config = withCheck();
    const first = await startToHealthCheck(config, 'rev1');
    first.check.resolve(ok(['hc']));
    await first.p;
    const good = await running(config);
    const ac = new AbortController();
    const h = harness(config);
    const p = h.start({ signal: ac.signal });
    await drive(h, 'rev2');
    const b = await h.q.next('run');
    await leaveResult(b.args[1] as RunOptions, config.stateDir);
    b.resolve(ok(['sys-build']));
    const a = await h.q.next('run');
    await switchTo(config.stateDir, (a.args[1] as RunOptions).env!.NIXOS_DESYNC_TOPLEVEL!);
    ac.abort();
    a.resolve(killed(['sys-switch']));
    await answerSwitch(await rollbackCall(h, good), config.stateDir);
    const res = await p;
    expect(res).toMatchObject({ result: 'failure', error: { code: 'E_INTERRUPTED' } });
    const st = await readState(config);
    expect(st.rejected).toEqual([]);
    expect(st.rollbacks.total.activation).toBe(0);
    expect(await running(config)).toBe(good);
  });
});

describe('a rollback is confirmed, or it is rollback_failed (#18.2)', () => {
  it('the previous system\'s activation fails: rollback_failed, never counted as a rollback, the journal stays; the next run only retries the rollback; recover finishes it', async () => {
    const config = withCheck();
    const { h, p, good, bad, check, committedLink } = await toHealthCheck(config, 'rev2');
    check.resolve(fail(['hc'], 'the web frontend answers 502'));
    (await rollbackCall(h, good)).resolve(fail(['sys-switch'], 'activation script failed'));
    const res = await p;
    expect(res).toMatchObject({ exitCode: 1, result: 'rollback_failed' });
    expect(res.error!.message).toMatch(/ROLLBACK FAILED: .*activation script failed.*unverified/s);
    let st = await readState(config);
    expect(st.runs.total).toMatchObject({ rolled_back: 0, rollback_failed: 1 });
    expect(st.rollbacks.total).toEqual({ activation: 0, health: 0 });
    expect(st.rollbacks.last).toBeNull(); // NixosDesyncRolledBack ("activated the previous system again") stays quiet
    expect(st.rejected).toEqual([expect.objectContaining({ revision: 'rev2', reason: 'health' })]); // the verdict stands
    expect(await readlink(join(config.stateDir, 'pins'))).toBe(committedLink);
    expect((await readJournal(config))?.activation).toMatchObject({ toplevel: bad, previous: good });
    expect(await running(config)).toBe(bad);

    // The next run returns to the verified system before anything else; it fails again: nothing else happens.
    const h2 = harness(config);
    const p2 = h2.start();
    (await rollbackCall(h2, good)).resolve(fail(['sys-switch'], 'activation script failed'));
    const res2 = await p2;
    expect(res2).toMatchObject({ exitCode: 1, result: 'rollback_failed', error: { code: 'E_ROLLBACK' } });
    expect(h2.q.log.map((c) => c.method)).toEqual(['run']); // no fetch, no gate, no build
    st = await readState(config);
    expect(st.runs.total).toMatchObject({ rollback_failed: 2, failure: 0 }); // the dead run is not counted again
    expect((await readJournal(config))?.activation?.toplevel).toBe(bad);

    // Fixed: `nixos-desync recover` rolls back, confirmed; the journal goes; nothing is counted twice.
    const h3 = harness(config);
    const rec = h3.recover();
    await answerSwitch(await rollbackCall(h3, good), config.stateDir);
    expect(await rec).toBe(res.runId);
    expect(await running(config)).toBe(good);
    expect(await readJournal(config)).toBeNull();
    st = await readState(config);
    expect(st.runs.total).toMatchObject({ rollback_failed: 2, rolled_back: 0, failure: 0 });
    const hist = (await createStateStore(config.stateDir).readHistory({ repair: false })).value.runs;
    expect(hist.map((r) => r.result)).toEqual(['success', 'rollback_failed', 'rollback_failed']);
  });

  it('a rollback command that exits 0 without making the target the running system is not confirmed: rollback_failed', async () => {
    const config = withCheck();
    const { h, p, good, check } = await toHealthCheck(config, 'rev2');
    check.resolve(fail(['hc']));
    (await rollbackCall(h, good)).resolve(ok(['sys-switch'])); // current-system still names the bad system
    const res = await p;
    expect(res.result).toBe('rollback_failed');
    expect(res.error!.message).toMatch(/the rollback is not confirmed/);
  });

  it('first run with no previous system: a failed health gate is rollback_failed, not rolled_back', async () => {
    const config = withCheck();
    const h = harness(config);
    const p = h.start();
    await drive(h, 'rev1');
    const b = await h.q.next('run');
    await leaveResult(b.args[1] as RunOptions, config.stateDir);
    b.resolve(ok(['sys-build']));
    await answerSwitch(await h.q.next('run'), config.stateDir);
    (await h.q.next('run')).resolve(fail(['hc']));
    const res = await p;
    expect(res.result).toBe('rollback_failed');
    expect(res.error!.message).toMatch(/there is no previous system to activate again/);
    expect((await readState(config)).runs.total).toMatchObject({ rolled_back: 0, rollback_failed: 1 });
  });

  it('a confirmed rollback after a failed health gate is rolled_back and counted once', async () => {
    const config = withCheck();
    const { h, p, good, check } = await toHealthCheck(config, 'rev2');
    check.resolve(fail(['hc']));
    await answerSwitch(await rollbackCall(h, good), config.stateDir);
    const res = await p;
    expect(res.result).toBe('rolled_back');
    const st = await readState(config);
    expect(st.rollbacks.total).toEqual({ activation: 0, health: 1 });
    expect(st.runs.total).toMatchObject({ rolled_back: 1, rollback_failed: 0 });
    expect(await readJournal(config)).toBeNull();
    expect(res.stages.rollback).toBeGreaterThanOrEqual(0);
  });
});

describe('the rollback target is GC-rooted from before the activation (#18.2)', () => {
  it('rooted in the run\'s set before the activation runs; the set (with the root) stays until the rollback is confirmed', async () => {
    const config = withCheck();
    const { h, p, good, check } = await toHealthCheck(config, 'rev2');
    const log = h.q.log.map((c) => (c.method === 'addRoot' ? `root ${String(c.args[0])} ${String(c.args[1]).split('/').slice(-2).join('/')}` : `${c.method} ${(c.args[0] as string[])[0] ?? ''}`));
    const rooted = log.indexOf(`root ${good} roots/rollback-target`);
    expect(rooted).toBeGreaterThan(-1);
    expect(rooted).toBeLessThan(log.lastIndexOf('run sys-switch'));
    const link = String(h.q.log.find((c) => c.method === 'addRoot' && c.args[0] === good)!.args[1]);
    check.resolve(fail(['hc']));
    const r = await rollbackCall(h, good);
    await expect(stat(join(link, '..', '..'))).resolves.toBeDefined(); // the run's set, while the rollback runs
    await answerSwitch(r, config.stateDir);
    expect((await p).result).toBe('rolled_back');
    await expect(stat(join(link, '..', '..'))).rejects.toThrow(); // confirmed: the abandoned set is gone
  });
});

describe('a kill -9 inside the rollback loses no verdict (#18.9)', () => {
  it('the recovery finishes the rollback, counts it once as rolled_back and rejects the candidate', async () => {
    const config = withCheck();
    const { h, p, good, bad, check } = await toHealthCheck(config, 'rev2');
    check.resolve(fail(['hc'], 'the web frontend answers 502'));
    const r = await rollbackCall(h, good);
    const crashed = join(dir, 'crashed');
    await crashCopy(config.stateDir, crashed); // killed while switch-to-configuration of the previous system runs
    await answerSwitch(r, config.stateDir);
    await p;
    await switchTo(config.stateDir, bad); // as the host was when the run died

    const crashedConfig = makeConfig(crashed, { health: { settle: '0s', failedUnits: false, checks: [['hc']] } });
    const h2 = harness(crashedConfig);
    const rec = h2.recover();
    await answerSwitch(await rollbackCall(h2, good), crashed);
    await rec;
    const st = (await createStateStore(crashed).readState({ repair: false })).value;
    expect(st.runs.total).toMatchObject({ rolled_back: 1, failure: 0, rollback_failed: 0 });
    expect(st.rollbacks.total).toEqual({ activation: 0, health: 1 });
    expect(st.rollbacks.last).toMatchObject({ reason: 'health', toplevel: bad, previous: good });
    expect(st.rejected).toEqual([expect.objectContaining({ revision: 'rev2', reason: 'health' })]);
    expect(st.runs.last?.error).toMatch(/interrupted: .* after its health gate failed/);
    expect(await realpath(join(config.runDir, 'current-system'))).toBe(good);
  });

  it('the recovery\'s rollback fails too: rollback_failed, the candidate still rejected, the journal kept for the next try', async () => {
    const config = withCheck();
    const { h, p, good, bad, check } = await toHealthCheck(config, 'rev2');
    check.resolve(fail(['hc']));
    const r = await rollbackCall(h, good);
    const crashed = join(dir, 'crashed');
    await crashCopy(config.stateDir, crashed);
    await answerSwitch(r, config.stateDir);
    await p;
    await switchTo(config.stateDir, bad);
    const h2 = harness(makeConfig(crashed, { health: { settle: '0s', failedUnits: false, checks: [['hc']] } }));
    const rec = h2.recover();
    (await rollbackCall(h2, good)).resolve(fail(['sys-switch']));
    await expect(rec).rejects.toMatchObject({ code: 'E_ROLLBACK', message: expect.stringMatching(/the system is unverified/) });
    const store = createStateStore(crashed);
    const st = (await store.readState({ repair: false })).value;
    expect(st.runs.total).toMatchObject({ rolled_back: 0, rollback_failed: 1 });
    expect(st.rejected).toEqual([expect.objectContaining({ revision: 'rev2' })]);
    expect((await store.readJournal({ repair: false })).value?.activation?.toplevel).toBe(bad);
  });
});

describe('durations come from the monotonic clock (#18.9)', () => {
  it('a wall clock jumping back by ten days during a run gives no negative duration', async () => {
    const config = makeConfig(join(dir, 'state'));
    let t = Date.parse('2026-12-01T04:00:00Z');
    // Every reading of the wall clock is ten days earlier than the one before.
    const now = (): Date => new Date((t -= 10 * 86_400_000));
    vi.spyOn(Date, 'now').mockImplementation(() => (t -= 10 * 86_400_000));
    const h = harness(config);
    const p = h.start({ now });
    await drive(h, 'rev1');
    const b = await h.q.next('run');
    await leaveResult(b.args[1] as RunOptions, config.stateDir);
    b.resolve(ok(['sys-build']));
    await answerSwitch(await h.q.next('run'), config.stateDir);
    const res = await p;
    expect(res.result).toBe('success');
    expect(res.durationSeconds).toBeGreaterThanOrEqual(0);
    for (const [stage, secs] of Object.entries(res.stages)) expect(secs, stage).toBeGreaterThanOrEqual(0);
    expect((await readState(config)).runs.last!.durationSeconds).toBeGreaterThanOrEqual(0);
  });
});

describe('a run never starts from an unverified system (#18.3)', () => {
  it('the candidate a rollback rejected still runs: the next run (also with --retry) returns to the verified system before its fetch', async () => {
    const config = withCheck();
    const { h, p, good, bad, check } = await toHealthCheck(config, 'rev2');
    check.resolve(fail(['hc']));
    await answerSwitch(await rollbackCall(h, good), config.stateDir);
    expect((await p).result).toBe('rolled_back');
    expect((await readState(config)).verified).toMatchObject({ toplevel: good, how: 'health' });
    await switchTo(config.stateDir, bad); // e.g. left so by an older version's cancelled rollback
    const h2 = harness(config);
    const p2 = h2.start({ retry: true });
    await answerSwitch(await rollbackCall(h2, good), config.stateDir);
    (await h2.q.next('updateChannel')).reject(new Error('offline'));
    await p2;
    expect(h2.q.log.map((c) => c.method).slice(0, 2)).toEqual(['run', 'updateChannel']);
    expect(await running(config)).toBe(good);
  });
});

describe('a second SIGTERM during the rollback does not cut it short', () => {
  it('the CLI\'s handler: the first SIGTERM (health gate) aborts; a second one while the rollback runs neither exits nor cancels it; the rollback is confirmed', async () => {
    const config = withCheck();
    const ac = new AbortController();
    const shield = createShield();
    const exits: number[] = [];
    const on = createSignalHandler({ abort: () => ac.abort(), exit: (c) => void exits.push(c), stderr: () => undefined, shield });
    const { h, p, good, check } = await toHealthCheck(config, 'rev2', { signal: ac.signal, shield });
    on('SIGTERM');
    check.resolve(killed(['hc']));
    const r = await rollbackCall(h, good);
    expect(shield.active).toBe(true); // the rollback's switch is running
    on('SIGTERM');
    expect(exits).toEqual([]);
    expect((r.args[1] as RunOptions).signal?.aborted ?? false).toBe(false);
    await answerSwitch(r, config.stateDir);
    const res = await p;
    expect(res.error!.message).toMatch(/activated again; the previous pin set was restored/);
    expect(await running(config)).toBe(good);
    expect(shield.active).toBe(false);
    expect(await readJournal(config)).toBeNull();
    on('SIGTERM'); // after the rollback a further signal exits again
    expect(exits).toEqual([1]);
  });
});
