// The watched model: a file change shows in /metrics within a second, bursts are coalesced,
// generations are counted from events (not per scrape), and deleted/recreated or replaced
// directories recover.
import { mkdir, readFile, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { MachineState } from '../../src/state/model.js';
import { writeFileAtomic } from '../../src/util/fsatomic.js';
import { buildFixtureHost, type FixtureHost } from '../fixtures/exporter/build.js';
import { sample, startTestExporter, waitFor, type StartedExporter, stopFixture } from '../fixtures/exporter/start.js';

let host: FixtureHost | undefined;
let exp: StartedExporter | undefined;
afterEach(async () => {
  await stopFixture(exp, host);
  [exp, host] = [undefined, undefined];
});

const metric = async (series: string): Promise<number | undefined> => sample((await request(exp!.server).get('/metrics')).text, series);

async function editState(dir: string, edit: (s: MachineState) => void): Promise<void> {
  const s = JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')) as MachineState;
  edit(s);
  await writeFileAtomic(join(dir, 'state.json'), JSON.stringify(s));
}

describe('watched model', () => {
  it('a state change is visible in /metrics within a second', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    expect(await metric('nixos_desync_lag_rebuilds{desync="lagging"}')).toBe(2);
    await editState(host.stateDir, (s) => {
      s.committed.pins.lagging!.desyncAge = 3;
      s.runs.total.failure = 3;
    });
    const { ms } = await waitFor(() => metric('nixos_desync_lag_rebuilds{desync="lagging"}'), (v) => v === 3);
    expect(ms).toBeLessThan(1000);
    expect(await metric('nixos_desync_runs_total{result="failure"}')).toBe(3);
  });

  it('a journal appearing and disappearing flips run_in_progress', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    const journal = { version: 1, runId: 'r', pid: process.pid, startedAt: '2026-01-10T04:00:00.000Z', stage: 'gate', previousSetId: null, candidateSetId: null, child: null };
    await writeFileAtomic(join(host.stateDir, 'journal.json'), JSON.stringify(journal));
    await waitFor(() => metric('nixos_desync_run_in_progress'), (v) => v === 1);
    await unlink(join(host.stateDir, 'journal.json'));
    await waitFor(() => metric('nixos_desync_run_in_progress'), (v) => v === 0);
  });

  it('a run holding the lock is applied only after it released it, all files at once (no torn scrape)', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    const before = (await request(exp.server).get('/metrics')).text;
    expect(sample(before, 'nixos_desync_lag_rebuilds{desync="lagging"}')).toBe(2);
    expect(sample(before, 'nixos_desync_runs_total{result="failure"}')).toBe(2);
    expect(sample(before, 'nixos_desync_run_in_progress')).toBe(0);
    // A run (this live process) takes the lock, commits its pins, then records itself: two writes.
    const lock = join(host.stateDir, 'lock');
    await writeFile(lock, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), host: 'h', command: 'upgrade' }) + '\n');
    await waitFor(() => metric('nixos_desync_run_in_progress'), (v) => v === 1);
    await editState(host.stateDir, (s) => void (s.committed.pins.lagging!.desyncAge = 3));
    await exp.model.rescanAll('test');
    let mid = (await request(exp.server).get('/metrics')).text;
    expect(sample(mid, 'nixos_desync_lag_rebuilds{desync="lagging"}')).toBe(2); // not the half-written run
    expect(sample(mid, 'nixos_desync_runs_total{result="failure"}')).toBe(2);
    expect(sample(mid, 'nixos_desync_run_in_progress')).toBe(1);
    await editState(host.stateDir, (s) => void (s.runs.total.failure = 3));
    await exp.model.rescanAll('test');
    mid = (await request(exp.server).get('/metrics')).text;
    expect(sample(mid, 'nixos_desync_lag_rebuilds{desync="lagging"}')).toBe(2);
    // The run ends: both changes appear in the same scrape.
    await unlink(lock);
    const { value } = await waitFor(async () => (await request(exp!.server).get('/metrics')).text, (t) => sample(t, 'nixos_desync_run_in_progress') === 0);
    expect(sample(value, 'nixos_desync_lag_rebuilds{desync="lagging"}')).toBe(3);
    expect(sample(value, 'nixos_desync_runs_total{result="failure"}')).toBe(3);
  });

  it('a lock left by a dead process does not hold anything back', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    await writeFile(join(host.stateDir, 'lock'), JSON.stringify({ pid: 2 ** 22 + 12345, startedAt: '2026-01-10T04:00:00.000Z', host: 'h', command: 'upgrade' }) + '\n');
    await editState(host.stateDir, (s) => void (s.runs.total.failure = 7));
    await waitFor(() => metric('nixos_desync_runs_total{result="failure"}'), (v) => v === 7);
    expect(await metric('nixos_desync_run_in_progress')).toBe(0);
  });

  it('a run killed holding the lock (kill -9) shows at the very next scrape — not in progress, and what it wrote — not at the next lock poll', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config, { model: { lockPollMs: 600_000 } });
    const run = spawn('sleep', ['300'], { stdio: 'ignore' });
    await writeFile(join(host.stateDir, 'lock'), JSON.stringify({ pid: run.pid, startedAt: new Date().toISOString(), host: 'h', command: 'upgrade' }) + '\n');
    await waitFor(() => metric('nixos_desync_run_in_progress'), (v) => v === 1);
    await editState(host.stateDir, (s) => void (s.runs.total.failure = 9));
    await exp.model.rescanAll('test'); // held back: the run still holds the lock
    expect(await metric('nixos_desync_runs_total{result="failure"}')).toBe(2);
    run.kill('SIGKILL');
    await new Promise((r) => run.once('exit', r));
    const t = (await request(exp.server).get('/metrics')).text;
    expect(sample(t, 'nixos_desync_run_in_progress')).toBe(0);
    expect(sample(t, 'nixos_desync_runs_total{result="failure"}')).toBe(9);
  });

  it('the running system swapped within the debounce (a killed run\'s activation landing) shows at the very next scrape: system_unverified 1', async () => {
    host = await buildFixtureHost();
    const [sys2, sys3] = [join(host.storeDir, 'sys2'), join(host.storeDir, 'sys3')];
    await editState(host.stateDir, (s) => void (s.verified = { toplevel: sys2, at: '2026-01-10T04:00:00.000Z', runId: 'r0', how: 'health' }));
    // A dead run's journal: it was activating sys3 over sys2 when it died.
    const journal = { version: 1, runId: 'r1', pid: 2 ** 22 + 12345, startedAt: '2026-01-10T04:00:00.000Z', stage: 'activate', previousSetId: null, candidateSetId: null, child: null,
      activation: { toplevel: sys3, previous: sys2, mode: 'switch' }, verdict: null };
    await writeFileAtomic(join(host.stateDir, 'journal.json'), JSON.stringify(journal));
    exp = await startTestExporter(host.config, { model: { debounceMs: 60_000, maxWaitMs: 60_000 } });
    expect(await metric('nixos_desync_system_unverified')).toBe(0); // sys2, the verified one, still runs
    await symlink(sys3, join(host.runDir, 'current-system.tmp'));
    await rename(join(host.runDir, 'current-system.tmp'), join(host.runDir, 'current-system'));
    expect(await metric('nixos_desync_system_unverified')).toBe(1);
  });

  it('coalesces a rename storm of the pins symlink and state.json into few re-reads', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    const before = exp.model.stats.refreshes.state;
    const setId = '20260110T040000Z-a1b2c3';
    const other = '20260111T040000Z-d4e5f6';
    await mkdir(join(host.stateDir, 'sets', other, 'pins'), { recursive: true });
    for (let i = 0; i < 100; i++) {
      const tmp = join(host.stateDir, `.pins.tmp-${i}`);
      await symlink(`sets/${i % 2 ? other : setId}/pins`, tmp);
      await rename(tmp, join(host.stateDir, 'pins'));
      if (i % 10 === 0) await editState(host.stateDir, (s) => void (s.runs.total.success = 100 + i));
    }
    await editState(host.stateDir, (s) => void (s.runs.total.success = 1000));
    const { ms } = await waitFor(() => metric('nixos_desync_runs_total{result="success"}'), (v) => v === 1000);
    expect(ms).toBeLessThan(1000);
    await exp.model.settled();
    expect(exp.model.stats.refreshes.state - before).toBeLessThan(40);
  });

  it('counts generations from add/unlink events, and scrapes do not re-read anything', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    for (let i = 4; i <= 60; i++) await symlink(join(host.storeDir, 'sys3'), join(host.profilesDir, `system-${i}-link`));
    for (let i = 4; i <= 23; i++) await unlink(join(host.profilesDir, `system-${i}-link`));
    await waitFor(() => metric('nixos_desync_system_generations'), (v) => v === 40);
    await exp.model.settled();
    const refreshes = { ...exp.model.stats.refreshes };
    for (let i = 0; i < 20; i++) await exp.exporter.metrics();
    expect(exp.model.stats.refreshes).toEqual(refreshes);
    // The current generation moves with the `system` link swap.
    await symlink('system-60-link', join(host.profilesDir, '.system.tmp'));
    await rename(join(host.profilesDir, '.system.tmp'), join(host.profilesDir, 'system'));
    await waitFor(() => metric('nixos_desync_system_generation'), (v) => v === 60);
    // Activation: current-system now points at the newest generation's system.
    expect(await metric('nixos_desync_system_activation_pending')).toBe(1);
    await symlink(join(host.storeDir, 'sys3'), join(host.runDir, '.cs.tmp'));
    await rename(join(host.runDir, '.cs.tmp'), join(host.runDir, 'current-system'));
    await waitFor(() => metric('nixos_desync_system_activation_pending'), (v) => v === 0);
  });

  it('recovers when the state and profiles directories are deleted and recreated', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    const saved = await readFile(join(host.stateDir, 'state.json'), 'utf8');
    await rm(host.stateDir, { recursive: true });
    await rm(host.profilesDir, { recursive: true });
    await waitFor(() => metric('nixos_desync_collector_success{collector="desyncs"}'), (v) => v === 0);
    await waitFor(() => metric('nixos_desync_collector_success{collector="system"}'), (v) => v === 0);
    await mkdir(host.stateDir);
    await writeFile(join(host.stateDir, 'state.json'), saved);
    await mkdir(host.profilesDir);
    await symlink(join(host.storeDir, 'sys2'), join(host.profilesDir, 'system-2-link'));
    await symlink('system-2-link', join(host.profilesDir, 'system'));
    await waitFor(() => metric('nixos_desync_collector_success{collector="desyncs"}'), (v) => v === 1);
    await waitFor(() => metric('nixos_desync_system_generations'), (v) => v === 1);
    expect(await metric('nixos_desync_system_activation_pending')).toBe(0);
    // And the new directories are watched: a later change shows up again.
    await editState(host.stateDir, (s) => void (s.runs.total.breach = 7));
    await waitFor(() => metric('nixos_desync_runs_total{result="breach"}'), (v) => v === 7);
    await symlink(join(host.storeDir, 'sys3'), join(host.profilesDir, 'system-3-link'));
    await waitFor(() => metric('nixos_desync_system_generations'), (v) => v === 2).catch((e) => { console.log(JSON.stringify(exp!.logs), exp!.model.stats); throw e; });
  });

  it('a directory replaced behind the watcher is picked up by the safety-net re-read', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    const saved = JSON.parse(await readFile(join(host.stateDir, 'state.json'), 'utf8')) as MachineState;
    await rename(host.stateDir, `${host.stateDir}.old`);
    await mkdir(host.stateDir);
    saved.runs.total.success = 42;
    await writeFile(join(host.stateDir, 'state.json'), JSON.stringify(saved));
    await exp.model.rescanAll('test');
    await waitFor(() => metric('nixos_desync_runs_total{result="success"}'), (v) => v === 42);
    saved.runs.total.success = 43;
    await writeFileAtomic(join(host.stateDir, 'state.json'), JSON.stringify(saved));
    await waitFor(() => metric('nixos_desync_runs_total{result="success"}'), (v) => v === 43);
  });
});
