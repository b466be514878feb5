// #11 loop invariants with the in-process loop and a fake Nix: every run that took the lock is
// recorded exactly once (items 1, 6), nothing in the state directory changes before the lock
// and a live writer's temp files survive (5), desync records move with the pins (8), and a dry
// run writes nothing at all (10).
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { chmod, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile, stat } from 'node:fs/promises';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStateStore } from '../../src/state/store.js';
import { acquireLock } from '../../src/state/lock.js';
import { bootId, processStartTime } from '../../src/util/proc.js';
import { DesyncError } from '../../src/util/errors.js';
import { drive, fullRun, harness, makeConfig, snapshotTree } from '../helpers/upgrade-harness.js';

let dir: string;
let children: ChildProcess[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-inv-'));
});
afterEach(async () => {
  for (const c of children) c.kill('SIGKILL');
  children = [];
  await rm(dir, { recursive: true, force: true });
});

const deadPid = (): number => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
function liveChild(): number {
  const c = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(c);
  return c.pid!;
}

async function totals(stateDir: string): Promise<number> {
  const t = (await createStateStore(stateDir).readState({ repair: false })).value.runs.total;
  return t.success + t.failure + t.breach;
}
async function historyIds(stateDir: string): Promise<string[]> {
  return (await createStateStore(stateDir).readHistory({ repair: false })).value.runs.map((r) => r.id);
}
/** The next run, whose fetch fails at once: only the run's opening (layout, recovery, reads) matters. */
async function offlineRun(stateDir: string) {
  const h = harness(makeConfig(stateDir));
  const p = h.start();
  const first = await Promise.race([h.q.next('updateChannel').then((c) => c), p.then(() => null)]);
  first?.reject(new DesyncError('E_FETCH', 'offline'));
  return { res: await p, lines: h.lines };
}

describe('#11.1 every run that took the lock is recorded, whatever step failed', () => {
  it('a replaced pin file (verifySet) fails the run before its first stage, and the run is recorded', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const set = (await readlink(join(config.stateDir, 'pins'))).split('/')[1]!;
    const target = join(config.stateDir, 'sets', set, 'pins', 'syn.nix');
    await rm(target);
    await symlink('/etc/hostname', target);
    const { res } = await offlineRun(config.stateDir);
    expect(res.exitCode).toBe(1);
    expect(res.error).toMatchObject({ code: 'E_UNSAFE_PATH', message: expect.stringMatching(/syn\.nix is not a regular file/) });
    expect(await totals(config.stateDir)).toBe(2);
    const state = (await createStateStore(config.stateDir).readState({ repair: false })).value;
    expect(state.runs.last).toMatchObject({ id: res.runId, result: 'failure', error: expect.stringMatching(/not a regular file/) });
    expect(await historyIds(config.stateDir)).toContain(res.runId);
    await expect(stat(join(config.stateDir, 'lock'))).rejects.toThrow();
  });

  it('an unsafe sets/ directory (layout, checked with the lock held) is recorded as a failed run', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    await chmod(join(config.stateDir, 'sets'), 0o775);
    const { res } = await offlineRun(config.stateDir);
    expect(res).toMatchObject({ exitCode: 1, error: { code: 'E_UNSAFE_PATH', message: expect.stringMatching(/group- or world-writable/) } });
    expect((await createStateStore(config.stateDir).readState({ repair: false })).value.runs).toMatchObject({ total: { success: 1, failure: 1 }, last: { id: res.runId } });
  });

  it('a recovery that fails is recorded; the dead run\'s journal stays for the next run to recover', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const committed = (await readlink(join(config.stateDir, 'pins'))).split('/')[1]!;
    const journal = { version: 1, runId: '20260101T000000Z-dead01', pid: deadPid(), startedAt: '2026-01-01T00:00:00.000Z', stage: 'system_build', previousSetId: committed, candidateSetId: '20260101T000000Z-dead01', child: null };
    await writeFile(join(config.stateDir, 'journal.json'), JSON.stringify(journal));
    // The committed set's pin directory is gone: recovery cannot point pins back at it.
    await rm(join(config.stateDir, 'pins'));
    await symlink('sets/20260101T000000Z-dead01/pins', join(config.stateDir, 'pins'));
    await rm(join(config.stateDir, 'sets', committed, 'pins'), { recursive: true });
    const { res } = await offlineRun(config.stateDir);
    expect(res.exitCode).toBe(1);
    expect(res.error?.code).toMatch(/^E_/);
    const state = (await createStateStore(config.stateDir).readState({ repair: false })).value;
    expect(state.runs.total.failure).toBe(1);
    expect(state.runs.last!.id).toBe(res.runId);
    expect(JSON.parse(await readFile(join(config.stateDir, 'journal.json'), 'utf8')).runId).toBe(journal.runId);
  });
});

describe('#11.6 a dead run is recorded exactly once', () => {
  it('killed inside record() after state.json was written: recovery completes the history and does not count it again', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const { res: second } = await fullRun(config, 'rev2');
    // As a kill between the state write and the history append leaves it: history without the
    // run, its journal still there, its lock held by a dead process.
    const store = createStateStore(config.stateDir);
    const hist = (await store.readHistory({ repair: false })).value;
    await writeFile(join(config.stateDir, 'history.json'), JSON.stringify({ version: 1, runs: hist.runs.slice(0, -1) }));
    await writeFile(join(config.stateDir, 'journal.json'), JSON.stringify({ version: 1, runId: second.runId, pid: deadPid(), startedAt: second.startedAt, stage: 'activate', previousSetId: null, candidateSetId: null, child: null }));
    await writeFile(join(config.stateDir, 'lock'), JSON.stringify({ pid: deadPid(), bootId: bootId(), startedAt: second.startedAt, host: 'h', command: 'upgrade', runId: second.runId }));
    expect(await totals(config.stateDir)).toBe(2);
    const { res, lines } = await offlineRun(config.stateDir);
    expect(lines.join('')).toMatch(/already recorded itself/);
    expect(await totals(config.stateDir)).toBe(3); // the two runs + this one, nothing twice
    const ids = await historyIds(config.stateDir);
    expect(ids).toEqual([...new Set(ids)]);
    expect(ids.filter((i) => i === second.runId)).toHaveLength(1);
    expect(ids.at(-1)).toBe(res.runId);
  });

  it('killed after taking the lock, before its journal: the lock names the run and it is recorded once', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    await writeFile(join(config.stateDir, 'lock'), JSON.stringify({ pid: deadPid(), bootId: bootId(), startedAt: '2026-01-02T00:00:00.000Z', host: 'h', command: 'upgrade', runId: '20260102T000000Z-0dead0' }));
    const { lines } = await offlineRun(config.stateDir);
    expect(lines.join('')).toMatch(/recovered from an interrupted run 20260102T000000Z-0dead0: .*died holding the lock before it wrote its journal/);
    expect(await totals(config.stateDir)).toBe(3);
    const ids = await historyIds(config.stateDir);
    expect(ids.filter((i) => i === '20260102T000000Z-0dead0')).toHaveLength(1);
    expect(ids).toEqual([...new Set(ids)]);
  });

  it('killed after it recorded itself and removed its journal, before releasing the lock: not counted again', async () => {
    const config = makeConfig(join(dir, 'state'));
    const { res: first } = await fullRun(config, 'rev1');
    await writeFile(join(config.stateDir, 'lock'), JSON.stringify({ pid: deadPid(), bootId: bootId(), startedAt: first.startedAt, host: 'h', command: 'upgrade', runId: first.runId }));
    await offlineRun(config.stateDir);
    expect(await totals(config.stateDir)).toBe(2);
    const ids = await historyIds(config.stateDir);
    expect(ids).toEqual([...new Set(ids)]);
  });

  it('a corrupt journal of a dead run gets a unique id every time (history ids stay unique)', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    for (let i = 0; i < 2; i++) {
      await writeFile(join(config.stateDir, 'journal.json'), '{ torn');
      await offlineRun(config.stateDir);
    }
    const ids = await historyIds(config.stateDir);
    expect(ids).toHaveLength(5);
    expect(ids).toEqual([...new Set(ids)]);
  });
});

describe('#11.5 nothing in the state directory changes before the lock; live writers keep their temp files', () => {
  it('a run refused with E_LOCKED changes nothing, not even a live writer\'s temp file', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const writer = liveChild();
    // A run in progress: it holds the lock and is writing state.json through a temp file.
    await writeFile(join(config.stateDir, 'lock'), JSON.stringify({ pid: writer, startTime: processStartTime(writer), bootId: bootId(), startedAt: new Date().toISOString(), host: 'h', command: 'upgrade', runId: 'r-live' }));
    await writeFile(join(config.stateDir, `.state.json.tmp-${writer}-abcd1234`), '{"partial":');
    const before = await snapshotTree(config.stateDir);
    await expect(harness(config).start()).rejects.toMatchObject({ code: 'E_LOCKED' });
    expect(await snapshotTree(config.stateDir)).toEqual(before);
  });

  it('with the lock held, temp files of dead writers are removed and a live writer\'s are kept', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const live = liveChild();
    const liveTmp = `.history.json.tmp-${live}-0badf00d`;
    const deadTmp = `.state.json.tmp-${deadPid()}-deadbeef`;
    await writeFile(join(config.stateDir, liveTmp), 'x');
    await writeFile(join(config.stateDir, deadTmp), 'x');
    await offlineRun(config.stateDir);
    await expect(stat(join(config.stateDir, liveTmp))).resolves.toBeTruthy();
    await expect(stat(join(config.stateDir, deadTmp))).rejects.toThrow();
  });
});

// Issue 22 refines #11.8: the gate's verdict is recorded (a passed gate ends a breach and is the
// last attempt), while the pin, its lag and its behind clock stay until the pins move.
describe('#11.8 desync records and pins move together or not at all', () => {
  it('a failed system build keeps the pins of desyncs that passed: their lag and behind clock do not reset', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    await fullRun(config, 'rev2', { failing: ['hm'] });
    const store = createStateStore(config.stateDir);
    const before = (await store.readState({ repair: false })).value;
    expect(before.desyncs.hm!.behindSince).not.toBeNull();
    const { res } = await fullRun(config, 'rev3', { systemFails: true });
    expect(res.error?.code).toBe('E_SYSTEM_BUILD');
    const after = (await store.readState({ repair: false })).value;
    expect(after.committed.pins.hm).toEqual(before.committed.pins.hm);
    expect(after.desyncs.hm).toMatchObject({ behindSince: before.desyncs.hm!.behindSince, lastAttempt: { result: 'passed' }, consecutiveFailures: 0 });
    expect(after.desyncs.hm!.attempts).toEqual({ ...before.desyncs.hm!.attempts, passed: before.desyncs.hm!.attempts.passed + 1 });
    expect(after.desyncs.syn).toMatchObject({ behindSince: before.desyncs.syn!.behindSince, lastAttempt: { result: 'passed' } });
  });

  it('onBreach "fail": the breach is recorded, a desync that passed keeps its record with its unmoved pin', async () => {
    const config = makeConfig(join(dir, 'state'), {
      desyncs: { hm: { requireBuilds: ['home-manager'], maxLagRebuilds: 0 }, syn: { requireBuilds: ['matrix-synapse'], checks: [['check-syn']] } },
    });
    await fullRun(config, 'rev1');
    await fullRun(config, 'rev2', { checkFails: true });
    const store = createStateStore(config.stateDir);
    const before = (await store.readState({ repair: false })).value;
    expect(before.committed.pins.syn!.desyncAge).toBe(1);
    const h = harness(config);
    const p = h.start();
    await drive(h, 'rev3', { failing: ['hm'] });
    const res = await p;
    expect(res.result).toBe('breach');
    const after = (await store.readState({ repair: false })).value;
    expect(after.desyncs.hm).toMatchObject({ breached: true, breachReason: expect.stringMatching(/lag 0 ≥ maxLagRebuilds 0/) });
    expect(after.committed.pins).toEqual(before.committed.pins);
    expect(after.desyncs.syn).toMatchObject({ behindSince: before.desyncs.syn!.behindSince, lastAttempt: { result: 'passed' }, breached: false });
    expect(after.desyncs.syn!.behindSince).not.toBeNull();
  });
});

describe('#11.10 a dry run writes nothing', () => {
  it('leaves the state tree byte-for-byte identical: corrupt journal, dead writer\'s temp file and all', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    await writeFile(join(config.stateDir, 'journal.json'), '{ torn');
    await writeFile(join(config.stateDir, `.state.json.tmp-${deadPid()}-deadbeef`), 'x');
    await writeFile(join(config.stateDir, 'history.json'), '{ also torn');
    const before = await snapshotTree(config.stateDir);
    const h = harness(config);
    const p = h.start({ dryRun: true });
    await drive(h, 'rev2', { failing: ['hm'], update: false });
    const res = await p;
    expect(res).toMatchObject({ dryRun: true, exitCode: 0 });
    expect(res.desyncs.find((d) => d.name === 'hm')).toMatchObject({ result: 'failed', lagRebuilds: 1 });
    expect(await snapshotTree(config.stateDir)).toEqual(before);
  });

  it('does not create a missing state directory, and runs beside a run that holds the lock', async () => {
    const config = makeConfig(join(dir, 'state'));
    const h = harness(config);
    const p = h.start({ dryRun: true });
    await drive(h, 'rev1', { update: false });
    expect((await p).exitCode).toBe(0);
    await expect(stat(config.stateDir)).rejects.toThrow();

    await fullRun(config, 'rev1');
    const lock = await acquireLock(join(config.stateDir, 'lock'), 'upgrade', { runId: 'r-live' });
    try {
      const before = await snapshotTree(config.stateDir);
      const d = harness(config);
      const dp = d.start({ dryRun: true });
      await drive(d, 'rev2', { update: false });
      expect((await dp).exitCode).toBe(0);
      expect(await snapshotTree(config.stateDir)).toEqual(before);
    } finally {
      await lock.release();
    }
  });
});

describe('#11.14 the gate imports nixpkgs for the running system\'s platform', () => {
  it('passes <runDir>/current-system/system to every gate request; null (Nix\'s default) when there is none', async () => {
    const runDir = join(dir, 'run');
    await mkdir(join(runDir, 'current-system'), { recursive: true });
    await writeFile(join(runDir, 'current-system', 'system'), 'aarch64-linux');
    for (const [expected, cfg] of [['aarch64-linux', { runDir }], [null, { runDir: join(dir, 'no-such-run') }]] as const) {
      const h = harness(makeConfig(join(dir, `state-${expected}`), cfg));
      const p = h.start({ dryRun: true });
      await drive(h, 'rev1', { update: false });
      await p;
      const gate = h.q.log.find((c) => c.method === 'buildGates')!;
      expect((gate.args[0] as Array<{ system?: string | null }>).map((r) => r.system)).toEqual([expected, expected]);
    }
  });
});
