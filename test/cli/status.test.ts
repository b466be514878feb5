// `status` tells the truth (issue 22): it refuses a state directory upgrade and the exporter
// refuse, says when a run is in progress and in which stage, labels start and end times, lists
// the desync proposal's desyncs, and after a rollback shows that a desync passed its gate.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { collectStatus, renderStatus } from '../../src/cli/status.js';
import { acquireLock } from '../../src/state/lock.js';
import { createStateStore } from '../../src/state/store.js';
import type { RunOptions } from '../../src/util/exec.js';
import { fail, ok } from '../helpers/fake-nix.js';
import { answerSwitch, drive, fullRun, harness, leaveResult, makeConfig } from '../helpers/upgrade-harness.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-status-'));
  await chmod(dir, 0o755);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: {} });
  return { code, stdout, stderr };
}

async function configFile(extra: Record<string, unknown> = {}): Promise<string> {
  const file = join(dir, 'config.json');
  await writeFile(file, JSON.stringify({ stateDir: join(dir, 'state'), profilesDir: join(dir, 'profiles'), runDir: join(dir, 'run'), desyncs: { hm: {} }, ...extra }));
  return file;
}

describe('status refuses an untrusted state directory, as upgrade and the exporter do', () => {
  it.each([
    ['a world-writable state directory', async (state: string) => chmod(state, 0o777), /state is group- or world-writable \(mode 777\); fix with chmod go-w/],
    ['a group-writable state.json', async (state: string) => chmod(join(state, 'state.json'), 0o664), /state\.json is group- or world-writable \(mode 664\)/],
  ])('%s: exit 1, E_UNSAFE_PATH, the same reason upgrade gives', async (_what, spoil, reason) => {
    const cfg = await configFile();
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    expect((await cli(['status', '--config', cfg])).code).toBe(0);
    await spoil(config.stateDir);
    const r = await cli(['status', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(reason);
    expect(r.stderr).toMatch(/upgrade refuses to run, the exporter exports nothing from it/);
    const j = await cli(['status', '--config', cfg, '--json']);
    expect(JSON.parse(j.stdout)).toMatchObject({ exitCode: 1, error: { code: 'E_UNSAFE_PATH', message: expect.stringMatching(reason) } });
    const up = await cli(['upgrade', '--config', cfg, '--json']);
    expect(JSON.parse(up.stdout)).toMatchObject({ exitCode: 1, error: { code: 'E_UNSAFE_PATH', message: expect.stringMatching(reason) } });
  });
});

describe('status tells the truth', () => {
  it('a run in progress: its run id, stage and start; a dead run\'s journal: interrupted, recover', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const lock = await acquireLock(join(config.stateDir, 'lock'), 'upgrade', { runId: '20260101T000000Z-abc123' });
    const store = createStateStore(config.stateDir);
    const journal = { version: 1, runId: '20260101T000000Z-abc123', pid: process.pid, startedAt: '2026-01-01T00:00:00.000Z', stage: 'system_build', previousSetId: null, candidateSetId: null, child: null } as const;
    try {
      await store.writeJournal({ ...journal, activation: null, verdict: null });
      const doc = await collectStatus(config);
      expect(doc.run.inProgress).toMatchObject({ pid: process.pid, runId: '20260101T000000Z-abc123', stage: 'system_build' });
      expect(renderStatus(doc)).toMatch(/^RUN IN PROGRESS: run 20260101T000000Z-abc123 \(pid \d+\), stage system_build, started /);
    } finally {
      await lock.release();
    }
    // The same journal left by a dead process: no run in progress, an interrupted one.
    await store.writeJournal({ ...journal, pid: 2 ** 22 + 4321, activation: null, verdict: null });
    const doc = await collectStatus(config);
    expect(doc.run).toEqual({ inProgress: null, interrupted: { runId: '20260101T000000Z-abc123', stage: 'system_build', startedAt: '2026-01-01T00:00:00.000Z' } });
    expect(renderStatus(doc)).toMatch(/INTERRUPTED RUN: 20260101T000000Z-abc123 .* died in stage system_build; `nixos-desync recover`/);
  });

  it('the last run says when it started and ended; the last successful run when it ended', async () => {
    const config = makeConfig(join(dir, 'state'));
    await fullRun(config, 'rev1');
    const doc = await collectStatus(config);
    expect(doc.run.inProgress).toBeNull();
    const text = renderStatus(doc);
    expect(text).toContain(`last run: success, started ${doc.lastRun!.at}, ended ${doc.lastRun!.finishedAt} (`);
    expect(text).toContain(`last successful run: ended ${doc.lastSuccessfulRunAt}`);
    expect(doc.lastSuccessfulRunAt).toBe(doc.lastRun!.finishedAt);
  });

  it('lists the desync proposal\'s desyncs (exporter.prDesyncDir) as the exporter exports them', async () => {
    const pr = join(dir, 'desyncs');
    const tree = join(dir, 'old-nixpkgs');
    await mkdir(pr);
    await mkdir(tree);
    await writeFile(join(tree, '.git-revision'), 'deadbeefcafe');
    await writeFile(join(pr, 'synapse.nix'), `{ desyncAge = 15; path = ${tree}; }`);
    await writeFile(join(pr, 'broken.nix'), '{ desyncAge = "x"; }');
    const config = makeConfig(join(dir, 'state'), { exporter: { prDesyncDir: pr } });
    await fullRun(config, 'rev1');
    const doc = await collectStatus(config);
    expect(doc.desyncs.map((d) => [d.name, d.source])).toEqual([['hm', 'loop'], ['syn', 'loop'], ['synapse', 'pr']]);
    expect(doc.desyncs.find((d) => d.name === 'synapse')).toMatchObject({ revision: 'deadbeefcafe', path: tree, lagRebuilds: 15, maxLagRebuilds: 14, breached: true });
    const text = renderStatus(doc);
    expect(text).toMatch(/^synapse \(proposal\) +deadbeefcafe +15\/14 .*BREACHED$/m);
    expect(text).toMatch(/warning: proposal state file: .*broken\.nix: .*desyncAge must be a non-negative integer/);
  });

  it('after a rollback, a desync that passed its gate shows that, not its old failure and BREACHED; its lag stays with its pin', async () => {
    const config = makeConfig(join(dir, 'state'), { onBreach: 'continue', health: { settle: '0s', failedUnits: false, checks: [['hc']] } });
    const healthy = async (rev: string, failing: string[]) => {
      const h = harness(config);
      const p = h.start();
      await drive(h, rev, { failing });
      const b = await h.q.next('run');
      await leaveResult(b.args[1] as RunOptions, config.stateDir);
      b.resolve(ok(['sys-build']));
      await answerSwitch(await h.q.next('run'), config.stateDir);
      return { h, p, check: await h.q.next('run') };
    };
    for (const [rev, failing] of [['rev1', []], ['rev2', ['hm']], ['rev3', ['hm']]] as const) {
      const r = await healthy(rev, [...failing]);
      r.check.resolve(ok(['hc']));
      await r.p;
    }
    let hm = (await collectStatus(config)).desyncs.find((d) => d.name === 'hm')!;
    expect(hm).toMatchObject({ lagRebuilds: 2, breached: false, lastAttempt: { result: 'failed' } });
    // rev4: hm fails again at its budget (breach, onBreach continue), committed at lag 3.
    const b = await healthy('rev4', ['hm']);
    b.check.resolve(ok(['hc']));
    expect((await b.p).result).toBe('breach');
    hm = (await collectStatus(config)).desyncs.find((d) => d.name === 'hm')!;
    expect(hm).toMatchObject({ lagRebuilds: 3, breached: true });
    // rev5: hm passes its gate, the health gate fails, the run rolls back.
    const r = await healthy('rev5', []);
    r.check.resolve(fail(['hc']));
    await answerSwitch(await r.h.q.next('run'), config.stateDir);
    expect((await r.p).result).toBe('rolled_back');
    const doc = await collectStatus(config);
    hm = doc.desyncs.find((d) => d.name === 'hm')!;
    expect(hm).toMatchObject({ lagRebuilds: 3, revision: 'rev1', breached: false, breachReason: null, lastAttempt: { result: 'passed' }, passedUncommitted: true, inSync: false });
    const text = renderStatus(doc);
    expect(text).toMatch(/^hm +rev1 +3\/2 .* passed .* lagging$/m);
    expect(text).not.toMatch(/BREACHED|hm: last failure|hm: breach/);
    expect(text).toMatch(/hm: passed its gate, but that run did not commit \(failed or rolled back\): still on its pin at lag 3/);
    expect(text).toMatch(/^last rollback: /m);
  });

  it('reboot required: each reason on its own line; without a trigger reason, what differs', async () => {
    const config = makeConfig(join(dir, 'state'));
    const top = async (name: string, kernel: string) => {
      const t = join(dir, 'store', name);
      await mkdir(t, { recursive: true });
      await writeFile(join(dir, 'store', kernel), '');
      await symlink(join(dir, 'store', kernel), join(t, 'kernel'));
      return t;
    };
    const [oldTop, newTop] = [await top('system-old', 'linux-6.1'), await top('system-new', 'linux-6.6')];
    await mkdir(config.runDir, { recursive: true });
    await symlink(oldTop, join(config.runDir, 'booted-system'));
    await symlink(newTop, join(config.runDir, 'current-system'));
    await mkdir(config.profilesDir, { recursive: true });
    await symlink(newTop, join(config.profilesDir, 'system'));
    let text = renderStatus(await collectStatus(config));
    expect(text).toMatch(/REBOOT REQUIRED/);
    expect(text).toContain(`  reboot required by kernel: ${join(dir, 'store', 'linux-6.1')} → ${join(dir, 'store', 'linux-6.6')}`);
    // Only the booted kernel differs from the running system's, no trigger configured: still explained.
    const none = makeConfig(join(dir, 'state'), { reboot: { triggers: [] } });
    text = renderStatus(await collectStatus(none));
    expect(text).toMatch(/REBOOT REQUIRED/);
    expect(text).toContain("  reboot required: the booted kernel, initrd or kernel modules differ from the running system's");
  });
});
