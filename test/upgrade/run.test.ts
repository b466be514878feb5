import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, mkdir, readFile, readlink, readdir, rm, symlink, writeFile, cp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { runUpgrade, type UpgradeResult } from '../../src/upgrade/run.js';
import { createStateStore } from '../../src/state/store.js';
import { collectStatus } from '../../src/cli/status.js';
import { createLogger } from '../../src/util/log.js';
import { DesyncError } from '../../src/util/errors.js';
import type { GateRequest } from '../../src/nix/adapter.js';
import type { RunOptions } from '../../src/util/exec.js';
import { CallQueue, candidate, createFakeNix, createFakeRunner, fail, gateReport, ok } from '../helpers/fake-nix.js';
import { answerSwitch, drive, switchTo, fullRun, harness, leaveResult as leaveResultIn, makeConfig, releaseSystem, type Harness } from '../helpers/upgrade-harness.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-run-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A built toplevel of this test's store (see leaveResult in the harness). */
const leaveResult = (opts: RunOptions): Promise<string> => leaveResultIn(opts, join(dir, 'state'));

async function pinFile(stateDir: string, name: string): Promise<string> {
  return readFile(join(stateDir, 'pins', `${name}.nix`), 'utf8');
}

describe('runUpgrade with a fake Nix', () => {
  it('first run: every desync follows the candidate, pins committed, lock and journal gone', async () => {
    const config = makeConfig(join(dir, 'state'));
    const { res } = await fullRun(config, 'rev1');
    expect(res.exitCode).toBe(0);
    expect(res.result).toBe('success');
    expect(await pinFile(config.stateDir, 'hm')).toContain('desyncAge = 0;');
    expect(await pinFile(config.stateDir, 'hm')).toContain('revision = "rev1";');
    const entries = await readdir(config.stateDir);
    expect(entries).not.toContain('lock');
    expect(entries).not.toContain('journal.json');
    const store = createStateStore(config.stateDir);
    expect((await store.listSets()).length).toBe(1);
    const state = (await store.readState({ repair: false })).value;
    expect(state.runs.total).toEqual({ success: 1, failure: 0, breach: 0, rolled_back: 0, rollback_failed: 0, held: 0 });
    expect((await store.readHistory({ repair: false })).value.runs).toHaveLength(1);
  });

  it('a failing desync stays on its pin (lag 1) while the system build sees the candidate set', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const h = harness(config);
    const p = h.start();
    await drive(h, 'rev2', { failing: ['hm'] });
    // Paused inside the system build: pins/ shows the candidate set.
    const build = await h.q.next('run');
    expect(await pinFile(config.stateDir, 'hm')).toMatch(/desyncAge = 1;[\s\S]*revision = "rev1";/);
    expect(await pinFile(config.stateDir, 'syn')).toMatch(/desyncAge = 0;[\s\S]*revision = "rev2";/);
    await leaveResult(build.args[1] as RunOptions);
    build.resolve(ok(['sys-build']));
    (await h.q.next('run')).resolve(ok(['sys-switch']));
    const res = await p;
    expect(res.exitCode).toBe(0);
    expect(res.desyncs.find((d) => d.name === 'hm')).toMatchObject({ result: 'failed', lagRebuilds: 1, revision: 'rev1', breached: false });
    expect(h.lines.join('')).toMatch(/hm: FAILED — home-manager: home-manager failed to build/);
    const state = (await createStateStore(config.stateDir).readState({ repair: false })).value;
    expect(state.desyncs.hm!.consecutiveFailures).toBe(1);
    expect(state.desyncs.hm!.behindSince).not.toBeNull();
  });

  it('a failed system build restores the previous pin set exactly', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const before = { link: await readlink(join(config.stateDir, 'pins')), hm: await pinFile(config.stateDir, 'hm'), syn: await pinFile(config.stateDir, 'syn') };
    const { res } = await fullRun(config, 'rev2', { failing: ['hm'], systemFails: true });
    expect(res.exitCode).toBe(1);
    expect(res.error?.code).toBe('E_SYSTEM_BUILD');
    expect(res.error?.message).toMatch(/previous pin set was restored/);
    expect(await readlink(join(config.stateDir, 'pins'))).toBe(before.link);
    expect(await pinFile(config.stateDir, 'hm')).toBe(before.hm);
    expect(await pinFile(config.stateDir, 'syn')).toBe(before.syn);
    expect(await createStateStore(config.stateDir).listSets()).toHaveLength(1);
    const state = (await createStateStore(config.stateDir).readState({ repair: false })).value;
    expect(state.committed.pins.hm!.desyncAge).toBe(0);
    expect(state.runs.total.failure).toBe(1);
  });

  it('breach at the budget with onBreach "fail": stops before the system build, exit 1, recorded until it passes', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    await fullRun(config, 'rev2', { failing: ['hm'] });
    await fullRun(config, 'rev3', { failing: ['hm'] });
    expect(await pinFile(config.stateDir, 'hm')).toContain('desyncAge = 2;');
    const h = harness(config);
    const p = h.start();
    await drive(h, 'rev4', { failing: ['hm'] });
    const res = await p;
    expect(res.exitCode).toBe(1);
    expect(res.result).toBe('breach');
    expect(res.error?.message).toMatch(/hm breached its budget \(lag 2 ≥ maxLagRebuilds 2\)/);
    // One lag number: the pin line, the run result and (below) status all say 2/2 — the
    // system was not rebuilt, so the lag did not move.
    expect(h.lines.join('')).toMatch(/pin +hm: stays on rev1 \(lag 2\/2,.*BREACH: lag 2 ≥ maxLagRebuilds 2/);
    expect(res.desyncs.find((d) => d.name === 'hm')).toMatchObject({ lagRebuilds: 2, breached: true });
    const doc = await collectStatus(config);
    expect(doc.desyncs.find((d) => d.name === 'hm')).toMatchObject({ lagRebuilds: 2, maxLagRebuilds: 2, breached: true });
    expect(h.q.log.filter((c) => c.method === 'run').map((c) => (c.args[0] as string[])[0])).not.toContain('sys-build');
    expect(await pinFile(config.stateDir, 'hm')).toContain('desyncAge = 2;');
    const store = createStateStore(config.stateDir);
    let state = (await store.readState({ repair: false })).value;
    expect(state.desyncs.hm!.breached).toBe(true);
    expect(state.runs.total.breach).toBe(1);
    // It stays breached until it passes its gate again.
    await fullRun(config, 'rev5', {});
    state = (await store.readState({ repair: false })).value;
    expect(state.desyncs.hm!.breached).toBe(false);
    expect(state.committed.pins.hm!.desyncAge).toBe(0);
  });

  it('breach with onBreach "continue": the system is still built and activated, the stale pin kept, exit 1', async () => {
    const config = makeConfig(join(dir, 'state'), { onBreach: 'continue' });
    await fullRun(config, 'rev1');
    await fullRun(config, 'rev2', { failing: ['hm'] });
    await fullRun(config, 'rev3', { failing: ['hm'] });
    const { res, h } = await fullRun(config, 'rev4', { failing: ['hm'] });
    expect(res.exitCode).toBe(1);
    expect(res.result).toBe('breach');
    expect(h.q.log.filter((c) => c.method === 'run').map((c) => (c.args[0] as string[])[0])).toEqual(['check-syn', 'sys-build', 'sys-switch']);
    expect(await pinFile(config.stateDir, 'hm')).toMatch(/desyncAge = 3;[\s\S]*revision = "rev1";/);
    expect(await pinFile(config.stateDir, 'syn')).toContain('revision = "rev4";');
  });

  it('maxBehind: a desync failing for longer than its time budget breaches', async () => {
    const config = makeConfig(join(dir, 'state'), { desyncs: { hm: { requireBuilds: ['home-manager'], maxLagRebuilds: null, maxBehind: '14d' } } });
    let t = Date.parse('2026-01-01T00:00:00Z');
    const now = () => new Date(t);
    const run = async (rev: string, failing: string[], systemBuilt = true) => {
      const h = harness(config);
      const p = h.start({ now });
      await drive(h, rev, { failing });
      if (systemBuilt) await releaseSystem(h);
      return p;
    };
    expect((await run('rev1', [])).exitCode).toBe(0);
    t += 86400_000;
    expect((await run('rev2', ['hm'])).exitCode).toBe(0);
    t += 14 * 86400_000 - 1000; // behind just under 14 days since the first failure: inside the budget
    expect((await run('rev3', ['hm'])).exitCode).toBe(0);
    t += 1000; // behind 14 days: breach
    const res = await run('rev4', ['hm'], false);
    expect(res.result).toBe('breach');
    expect(res.error?.message).toMatch(/behind 1209600s ≥ maxBehind 14d/);
  });

  it('first run with a failing desync and no pin: exit 1 with a clear message, no system build', async () => {
    const config = makeConfig(join(dir, 'state'));
    const h = harness(config);
    const p = h.start();
    await drive(h, 'rev1', { failing: ['hm'] });
    const res = await p;
    expect(res.exitCode).toBe(1);
    expect(res.error?.code).toBe('E_NO_PIN');
    expect(res.error?.message).toMatch(/desync hm failed its gate and has no known-good pin yet/);
    expect(h.q.log.some((c) => c.method === 'run' && (c.args[0] as string[])[0] === 'sys-build')).toBe(false);
    expect(await readdir(config.stateDir)).not.toContain('pins');
  });

  it('an evaluation error in one desync does not fail another', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const { res } = await fullRun(config, 'rev2', { evalFailing: ['hm'] });
    expect(res.exitCode).toBe(0);
    expect(res.desyncs.map((d) => [d.name, d.result])).toEqual([['hm', 'failed'], ['syn', 'passed']]);
  });

  it('a failing check fails its desync and gets the documented environment', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const h = harness(config);
    const p = h.start();
    (await h.q.next('updateChannel')).resolve(undefined);
    (await h.q.next('resolveCandidate')).resolve(candidate('rev2'));
    const g = await h.q.next('buildGates');
    g.resolve(gateReport(g.args[0] as GateRequest[]));
    const c = await h.q.next('run');
    expect(c.args[0]).toEqual(['check-syn', '--quick']);
    const env = (c.args[1] as RunOptions).env!;
    expect(env.NIXOS_DESYNC_NAME).toBe('syn');
    expect(env.NIXOS_DESYNC_CANDIDATE).toBe(candidate('rev2').path);
    expect(env.NIXOS_DESYNC_OUT_PATHS).toBe(`/nix/store/${'o'.repeat(32)}-matrix-synapse`);
    c.resolve(fail(['check-syn'], 'synapse does not start'));
    await releaseSystem(h);
    const res = await p;
    expect(res.desyncs.find((d) => d.name === 'syn')).toMatchObject({ result: 'failed', lagRebuilds: 1 });
    expect(h.lines.join('')).toMatch(/check check-syn --quick: check-syn exited with code 1/);
  });

  it('a timed-out system build fails the run and restores the pins', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const link = await readlink(join(config.stateDir, 'pins'));
    const h = harness(config);
    const p = h.start();
    await drive(h, 'rev2');
    const b = await h.q.next('run');
    b.resolve({ ...fail(['sys-build'], ''), exitCode: null, signal: 'SIGTERM', timedOut: true, durationMs: 10_800_000 });
    const res = await p;
    expect(res.exitCode).toBe(1);
    expect(res.error?.message).toMatch(/sys-build timed out after 10800s \(process tree killed\)/);
    expect(await readlink(join(config.stateDir, 'pins'))).toBe(link);
  });

  it('a fetch failure changes nothing but is recorded', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const link = await readlink(join(config.stateDir, 'pins'));
    const h = harness(config);
    const p = h.start();
    (await h.q.next('updateChannel')).reject(new DesyncError('E_FETCH', 'nix-channel --update nixos failed: exit 1'));
    const res = await p;
    expect(res.exitCode).toBe(1);
    expect(res.error?.code).toBe('E_FETCH');
    expect(h.q.log.map((c) => c.method)).toEqual(['updateChannel']);
    expect(await readlink(join(config.stateDir, 'pins'))).toBe(link);
    expect(await createStateStore(config.stateDir).listSets()).toHaveLength(1);
    expect((await createStateStore(config.stateDir).readHistory({ repair: false })).value.runs.at(-1)!.result).toBe('failure');
  });

  it('--dry-run builds the gates but changes nothing and skips the fetch', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const snapshot = async () => ({ link: await readlink(join(config.stateDir, 'pins')), state: await readFile(join(config.stateDir, 'state.json'), 'utf8'), hist: await readFile(join(config.stateDir, 'history.json'), 'utf8'), sets: await readdir(join(config.stateDir, 'sets')) });
    const before = await snapshot();
    const h = harness(config);
    const p = h.start({ dryRun: true });
    await drive(h, 'rev2', { failing: ['hm'], update: false });
    const res = await p;
    expect(res.exitCode).toBe(0);
    expect(res.dryRun).toBe(true);
    expect(res.desyncs.find((d) => d.name === 'hm')!.lagRebuilds).toBe(1);
    expect(await snapshot()).toEqual(before);
    expect(h.q.log.map((c) => c.method)).not.toContain('updateChannel');
  });

  it('a run with no desyncs is a plain, recorded auto-upgrade', async () => {
    const config = makeConfig(join(dir, 'state'), { desyncs: {} });
    const h = harness(config);
    const p = h.start();
    (await h.q.next('updateChannel')).resolve(undefined);
    (await h.q.next('resolveCandidate')).resolve(candidate('rev1'));
    await releaseSystem(h);
    const res = await p;
    expect(res.exitCode).toBe(0);
    expect(h.q.log.map((c) => c.method)).not.toContain('buildGates');
    expect((await createStateStore(config.stateDir).readState({ repair: false })).value.runs.total.success).toBe(1);
  });

  it('a desync removed from the config disappears from the next committed set', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const smaller = makeConfig(join(dir, 'state'), { desyncs: { syn: { requireBuilds: ['matrix-synapse'], checks: [['check-syn', '--quick']] } } });
    await fullRun(smaller, 'rev2');
    expect((await readdir(join(config.stateDir, 'pins'))).sort()).toEqual(['syn.nix']);
  });
});

describe('crash between steps and recovery', () => {
  async function deadPid(): Promise<number> {
    const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    return Number(r.stdout);
  }

  /** Copies the state dir as a crash would leave it (lock owned by a dead process). */
  async function crashCopy(stateDir: string, to: string): Promise<void> {
    await cp(stateDir, to, { recursive: true, verbatimSymlinks: true });
    const lock = JSON.parse(await readFile(join(to, 'lock'), 'utf8')) as Record<string, unknown>;
    await writeFile(join(to, 'lock'), JSON.stringify({ ...lock, pid: await deadPid() }));
  }

  /**
   * The next upgrade on a crashed copy; its fetch fails at once, so only the recovery runs.
   * With `rollback`, the recovery re-activates the previous system first (answered here).
   */
  async function recoverOn(crashed: string, rollback?: (argv: string[], opts: RunOptions) => void): Promise<{ res: UpgradeResult; lines: string[] }> {
    const h2 = harness(makeConfig(crashed));
    const p2 = h2.start();
    if (rollback) {
      const r = await h2.q.next('run');
      rollback(r.args[0] as string[], r.args[1] as RunOptions);
      await answerSwitch(r, crashed);
    }
    (await h2.q.next('updateChannel')).reject(new DesyncError('E_FETCH', 'offline'));
    return { res: await p2, lines: h2.lines };
  }

  /** Releases a run up to its system build and returns that pending call. */
  async function driveToSystemBuild(h: Harness, rev: string, failing: string[] = []) {
    (await h.q.next('updateChannel')).resolve(undefined);
    (await h.q.next('resolveCandidate')).resolve(candidate(rev));
    const g = await h.q.next('buildGates');
    g.resolve(gateReport(g.args[0] as GateRequest[], failing));
    (await h.q.next('run')).resolve(ok(['check-syn']));
    return h.q.next('run');
  }

  const points = ['after-candidate', 'during-gate', 'during-system-build', 'during-activate'] as const;
  for (const point of points) {
    it(`a crash ${point} leaves one complete committed set and the next run recovers`, async () => {
      const config = makeConfig(join(dir, 'state'));
      await fullRun(config, 'rev1');
      // The system running before this run (what a rollback activates again).
      const previous = join(dir, 'store', 'previous-system');
      await mkdir(previous, { recursive: true });
      await switchTo(config.stateDir, previous);
      const committedLink = await readlink(join(config.stateDir, 'pins'));
      const h = harness(config);
      const p = h.start();
      (await h.q.next('updateChannel')).resolve(undefined);
      (await h.q.next('resolveCandidate')).resolve(candidate('rev2'));
      const g = await h.q.next('buildGates');
      const crashed = join(dir, 'crashed');
      if (point === 'after-candidate' || point === 'during-gate') {
        await crashCopy(config.stateDir, crashed);
        g.resolve(gateReport(g.args[0] as GateRequest[]));
        (await h.q.next('run')).resolve(ok(['check-syn']));
        await releaseSystem(h);
      } else {
        g.resolve(gateReport(g.args[0] as GateRequest[]));
        (await h.q.next('run')).resolve(ok(['check-syn']));
        const b = await h.q.next('run');
        if (point === 'during-system-build') {
          await crashCopy(config.stateDir, crashed);
          // The candidate set is visible during the build (complete, never a mix).
          expect(await readlink(join(crashed, 'pins'))).not.toBe(committedLink);
        }
        await leaveResult(b.args[1] as RunOptions);
        b.resolve(ok(['sys-build']));
        const a = await h.q.next('run');
        if (point === 'during-activate') {
          // The activation has switched the running system when the run dies.
          await switchTo(config.stateDir, (a.args[1] as RunOptions).env!.NIXOS_DESYNC_TOPLEVEL!);
          await crashCopy(config.stateDir, crashed);
        }
        await answerSwitch(a, config.stateDir);
      }
      await p;
      // Killed before its commit point, every run leaves the committed set; one killed during
      // the activation also had its unconfirmed system rolled back (the previous one re-activated).
      const expectedLink = committedLink;
      let rolledBackTo: string | undefined;
      const { res, lines } = await recoverOn(crashed, point === 'during-activate'
        ? (argv, opts) => { expect(argv).toEqual(['sys-switch']); rolledBackTo = opts.env?.NIXOS_DESYNC_TOPLEVEL; }
        : undefined);
      if (point === 'during-activate') {
        expect(rolledBackTo).toBe(previous);
        expect(lines.join('')).toMatch(/the unconfirmed system .* was rolled back: .* activated again/);
        // A crash is not a verdict: the candidate is not rejected.
        expect((await createStateStore(crashed).readState({ repair: false })).value.rejected).toEqual([]);
      }
      expect(res.recoveredRun).not.toBeNull();
      expect(lines.join('')).toMatch(/recovered from an interrupted run/);
      expect(await readlink(join(crashed, 'pins'))).toBe(expectedLink);
      const store = createStateStore(crashed);
      expect(await store.listSets()).toEqual([expectedLink.split('/')[1]]);
      const names = await readdir(crashed);
      expect(names).not.toContain('journal.json');
      expect(names).not.toContain('lock');
      expect(names.filter((n) => n.includes('.tmp-'))).toEqual([]);
      const hist = (await store.readHistory({ repair: false })).value.runs;
      expect(hist.some((r) => r.error?.startsWith('interrupted'))).toBe(true);
      const pins = await readdir(join(crashed, 'pins'));
      expect(pins.sort()).toEqual(['hm.nix', 'syn.nix']);
    });
  }

  it('a crash during the very first system build leaves no committed set behind', async () => {
    const config = makeConfig(join(dir, 'state'));
    const h = harness(config);
    const p = h.start();
    const b = await driveToSystemBuild(h, 'rev1');
    const crashed = join(dir, 'crashed');
    await crashCopy(config.stateDir, crashed);
    expect(await readdir(crashed)).not.toContain('state.json'); // nothing was ever committed
    b.resolve(fail(['sys-build']));
    await p;
    const { res } = await recoverOn(crashed);
    expect(res.recoveredRun).not.toBeNull();
    // The dead run's candidate was never committed: no pins, no set.
    expect(await readdir(crashed)).not.toContain('pins');
    expect(await createStateStore(crashed).listSets()).toEqual([]);
    const state = (await createStateStore(crashed).readState({ repair: false })).value;
    expect(state.committed.setId).toBeNull();
  });

  it('a crash during the system build with a corrupt state.json restores the set the journal names', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const committedLink = await readlink(join(config.stateDir, 'pins'));
    const h = harness(config);
    const p = h.start();
    const b = await driveToSystemBuild(h, 'rev2', ['hm']);
    const crashed = join(dir, 'crashed');
    await crashCopy(config.stateDir, crashed);
    b.resolve(fail(['sys-build']));
    await p;
    await writeFile(join(crashed, 'state.json'), '{ torn');
    await recoverOn(crashed);
    expect(await readlink(join(crashed, 'pins'))).toBe(committedLink);
    expect(await createStateStore(crashed).listSets()).toEqual([committedLink.split('/')[1]]);
    expect(await readFile(join(crashed, 'pins', 'hm.nix'), 'utf8')).toContain('desyncAge = 0;');
  });

  it('a lock held by a live process gives E_LOCKED', async () => {
    const config = makeConfig(join(dir, 'state'));
    const h = harness(config);
    const p = h.start();
    await h.q.next('updateChannel').then((c) => {
      const second = harness(config).start();
      return expect(second).rejects.toMatchObject({ code: 'E_LOCKED' }).then(() => c.reject(new DesyncError('E_FETCH', 'stop')));
    });
    await p;
    await expect(stat(join(config.stateDir, 'lock'))).rejects.toThrow();
  });
});

describe('interruption (SIGINT/SIGTERM)', () => {
  it('an abort during the gate ends the run before the system build; the committed pins stay', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const link = await readlink(join(config.stateDir, 'pins'));
    const q = new CallQueue();
    const ac = new AbortController();
    const lines: string[] = [];
    const p = runUpgrade({ config, nix: createFakeNix(q), run: createFakeRunner(q), store: createStateStore(config.stateDir), logger: createLogger({ write: (l) => lines.push(l) }), env: {}, signal: ac.signal });
    (await q.next('updateChannel')).resolve(undefined);
    (await q.next('resolveCandidate')).resolve(candidate('rev2'));
    const g = await q.next('buildGates');
    ac.abort();
    g.resolve(gateReport(g.args[0] as GateRequest[]));
    // The check is still handed to the runner, which refuses to start anything once aborted.
    const c = await q.next('run');
    c.resolve({ ...fail(c.args[0] as string[]), exitCode: null, signal: 'SIGTERM' });
    const res = await p;
    expect(res.exitCode).toBe(1);
    expect(res.error?.code).toBe('E_INTERRUPTED');
    expect(q.log.filter((l) => l.method === 'run')).toHaveLength(1);
    expect(await readlink(join(config.stateDir, 'pins'))).toBe(link);
    expect(await createStateStore(config.stateDir).listSets()).toHaveLength(1);
    // The cut-short check is not recorded as a failure of the desync.
    const state = (await createStateStore(config.stateDir).readState({ repair: false })).value;
    expect(state.desyncs.syn!.attempts.failed).toBe(0);
    expect(state.runs.last!.error).toMatch(/interrupted during the gate/);
  });
});
