// Collector isolation: a corrupt or missing source turns only its collector's success to 0;
// a throwing collector is dropped alone; concurrent scrapes collect once (single-flight).
import { chmod, chown, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { Collector } from '../../src/metrics/collector.js';
import { createMetricsExporter } from '../../src/metrics/exporter.js';
import { emptyState, type MachineState } from '../../src/state/model.js';
import { writeFileAtomic } from '../../src/util/fsatomic.js';
import { stateTrustProblem } from '../../src/watch/state-trust.js';
import { silentLogger } from '../../src/util/log.js';
import type { HostModel } from '../../src/watch/model.js';
import { buildFixtureHost, FIXTURE_NOW, type FixtureHost } from '../fixtures/exporter/build.js';
import { sample, startTestExporter, type StartedExporter, stopFixture } from '../fixtures/exporter/start.js';

let host: FixtureHost | undefined;
let exp: StartedExporter | undefined;
afterEach(async () => {
  await stopFixture(exp, host);
  [exp, host] = [undefined, undefined];
});

async function scrape(e: StartedExporter): Promise<string> {
  return e.exporter.metrics();
}

describe('collectors against real files', () => {
  it('a corrupt state.json fails desyncs and runs, keeps system, and exports only what the pin files say', async () => {
    host = await buildFixtureHost();
    await writeFile(join(host.stateDir, 'state.json'), '{"version": 1, "committed": ');
    exp = await startTestExporter(host.config, { now: () => FIXTURE_NOW });
    const t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(0);
    expect(sample(t, 'nixos_desync_collector_success{collector="runs"}')).toBe(0);
    expect(sample(t, 'nixos_desync_collector_success{collector="system"}')).toBe(1);
    expect(sample(t, 'nixos_desync_system_generations')).toBe(3);
    // The pin files of the committed set still say what is pinned, with its lag.
    expect(sample(t, 'nixos_desync_lag_rebuilds{desync="breached"}')).toBe(3);
    expect(t).toMatch(/^nixos_desync_pin_info\{desync="lagging",revision="c0ffee0000000000000000000000000000000001",/m);
    // Nothing that would read as a counter reset or a resolved breach.
    expect(t).not.toMatch(/^nixos_desync_(attempts_total|runs_total|breached|in_sync)\{/m);
    expect(t).not.toMatch(/^nixos_desync_last_run_success /m);
    expect(sample(t, 'nixos_desync_run_in_progress')).toBe(0);
  });

  it('a corrupt state.json does not resolve an active breach: the last known breach stays until the loop repaired the file', async () => {
    host = await buildFixtureHost();
    const good = await readFile(join(host.stateDir, 'state.json'), 'utf8');
    exp = await startTestExporter(host.config, { now: () => FIXTURE_NOW });
    expect(sample(await scrape(exp), 'nixos_desync_breached{desync="breached"}')).toBe(1);
    await writeFile(join(host.stateDir, 'state.json'), '{"version": 1, "committed": ');
    await exp.model.rescanAll('test');
    let t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(0);
    expect(exp.exporter.lastOutcome.desyncs).toMatch(/state\.json: not valid JSON/);
    expect(sample(t, 'nixos_desync_breached{desync="breached"}')).toBe(1); // the page stays
    expect(sample(t, 'nixos_desync_breached{desync="lagging"}')).toBe(0);
    expect(t).not.toMatch(/^nixos_desync_(attempts_total|runs_total|in_sync)\{/m);
    // The loop repairs the file (here: the desync passed its gate since): the breach resolves.
    const repaired = JSON.parse(good) as MachineState;
    repaired.desyncs.breached!.breached = false;
    await writeFileAtomic(join(host.stateDir, 'state.json'), JSON.stringify(repaired));
    await exp.model.rescanAll('test');
    t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(1);
    expect(sample(t, 'nixos_desync_breached{desync="breached"}')).toBe(0);
  });

  it('an unsafe state directory (group/world-writable, foreign owner, symlinked state file) fails desyncs and runs with the reason; the known breach stays', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config, { now: () => FIXTURE_NOW });
    expect(sample(await scrape(exp), 'nixos_desync_runs_total{result="success"}')).toBe(10);
    const check = async (reason: RegExp): Promise<void> => {
      await exp!.model.rescanAll('test');
      const t = await scrape(exp!);
      expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(0);
      expect(sample(t, 'nixos_desync_collector_success{collector="runs"}')).toBe(0);
      expect(exp!.exporter.lastOutcome.desyncs).toMatch(reason);
      expect(exp!.exporter.lastOutcome.runs).toMatch(reason);
      expect(sample(t, 'nixos_desync_breached{desync="breached"}')).toBe(1);
      expect(t).not.toMatch(/^nixos_desync_(runs_total|lag_rebuilds|pin_info|attempts_total)\{/m);
      expect(sample(t, 'nixos_desync_collector_success{collector="system"}')).toBe(1);
    };
    await chmod(host.stateDir, 0o775);
    await check(/is group- or world-writable \(mode 775\).*chmod go-w/);
    await chmod(host.stateDir, 0o757);
    await check(/group- or world-writable \(mode 757\)/);
    await chmod(host.stateDir, 0o755);
    await chmod(join(host.stateDir, 'state.json'), 0o666);
    await check(/state\.json is group- or world-writable/);
    await chmod(join(host.stateDir, 'state.json'), 0o644);
    const hist = join(host.stateDir, 'history.json');
    await writeFile(join(host.dir, 'elsewhere.json'), await readFile(hist));
    await rm(hist);
    await symlink(join(host.dir, 'elsewhere.json'), hist);
    await check(/history\.json is a symlink/);
    await rm(hist);
    await writeFile(hist, await readFile(join(host.dir, 'elsewhere.json')));
    const uid = process.geteuid!();
    if (uid === 0) {
      await chown(host.stateDir, 4242, 4242);
      await check(/owned by uid 4242, not by root or the exporter's user/);
      await chown(host.stateDir, 0, 0);
    } else {
      // Not root: the same rule, seen from an exporter running as another user.
      expect(await stateTrustProblem(host.stateDir, uid + 1)).toMatch(new RegExp(`owned by uid ${(await stat(host.stateDir)).uid}`));
    }
    await exp.model.rescanAll('test');
    const t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(1);
    expect(sample(t, 'nixos_desync_runs_total{result="success"}')).toBe(10);
  });

  it('an unsafe state directory fails desyncs and runs at the next scrape, without any file event or re-read (issue 18 item 10)', async () => {
    host = await buildFixtureHost();
    // No safety-net re-read (the test helper's rescanIntervalMs is 0): only the scrape itself.
    exp = await startTestExporter(host.config, { now: () => FIXTURE_NOW });
    // (The fixture's history.json is corrupt on purpose: runs fails already, desyncs does not.)
    expect(sample(await scrape(exp), 'nixos_desync_collector_success{collector="desyncs"}')).toBe(1);
    const failing = async (): Promise<void> => {
      const t = await scrape(exp!);
      expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(0);
      expect(exp!.exporter.lastOutcome.desyncs).toMatch(/group- or world-writable/);
      expect(exp!.exporter.lastOutcome.runs).toMatch(/group- or world-writable/);
      expect(t).not.toMatch(/^nixos_desync_lag_rebuilds\{/m);
    };
    // chmod of the watched directory itself delivers no event the watcher reports.
    await chmod(host.stateDir, 0o775);
    await failing();
    await chmod(host.stateDir, 0o755);
    let t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(1);
    expect(sample(t, 'nixos_desync_lag_rebuilds{desync="breached"}')).toBe(3);
    await chmod(join(host.stateDir, 'state.json'), 0o664);
    await failing();
    await chmod(join(host.stateDir, 'state.json'), 0o644);
    t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(1);
  });

  it('a state directory that does not exist yet (the loop never ran) fails nothing', async () => {
    host = await buildFixtureHost();
    await rm(host.stateDir, { recursive: true });
    exp = await startTestExporter(host.config);
    const t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(1);
    expect(sample(t, 'nixos_desync_collector_success{collector="runs"}')).toBe(1);
    expect(sample(t, 'nixos_desync_runs_total{result="success"}')).toBe(0);
    expect(sample(t, 'nixos_desync_lag_rebuilds{desync="breached"}')).toBe(0);
    expect(sample(t, 'nixos_desync_system_reboot_required')).toBe(1);
  });

  it('a state directory that disappears after the exporter saw it fails desyncs and runs only', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    await rm(host.stateDir, { recursive: true });
    await exp.model.rescanAll('test');
    const t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(0);
    expect(sample(t, 'nixos_desync_collector_success{collector="runs"}')).toBe(0);
    expect(sample(t, 'nixos_desync_collector_success{collector="system"}')).toBe(1);
    // No counter reads as reset, no breach as resolved.
    expect(t).not.toMatch(/^nixos_desync_(runs_total|breached)\{/m);
  });

  it('a fresh host (empty state dir) succeeds, with zero timestamps and no last-run success', async () => {
    host = await buildFixtureHost();
    for (const f of ['state.json', 'history.json', 'pins', 'state.json.corrupt-20260105T040000000Z']) await rm(join(host.stateDir, f), { recursive: true });
    exp = await startTestExporter(host.config);
    const t = await scrape(exp);
    expect(sample(t, 'nixos_desync_collector_success{collector="desyncs"}')).toBe(1);
    expect(sample(t, 'nixos_desync_collector_success{collector="runs"}')).toBe(1);
    expect(sample(t, 'nixos_desync_runs_total{result="success"}')).toBe(0);
    expect(sample(t, 'nixos_desync_last_run_timestamp_seconds')).toBe(0);
    expect(sample(t, 'nixos_desync_last_successful_run_timestamp_seconds')).toBe(0);
    expect(t).not.toMatch(/^nixos_desync_last_run_(success|duration_seconds) /m);
    expect(sample(t, 'nixos_desync_in_sync{desync="insync"}')).toBe(0);
    expect(t).not.toMatch(/^nixos_desync_pin_info\{/m);
  });

  it('run_in_progress needs a journal whose process is alive', async () => {
    host = await buildFixtureHost();
    const journal = (pid: number): string => JSON.stringify({ version: 1, runId: 'r', pid, startedAt: '2026-01-10T04:00:00.000Z', stage: 'gate', previousSetId: null, candidateSetId: null, child: null });
    await writeFile(join(host.stateDir, 'journal.json'), journal(process.pid));
    exp = await startTestExporter(host.config);
    expect(sample(await scrape(exp), 'nixos_desync_run_in_progress')).toBe(1);
    await writeFile(join(host.stateDir, 'journal.json'), journal(2 ** 22 + 12345));
    await exp.model.rescanAll('test');
    expect(sample(await scrape(exp), 'nixos_desync_run_in_progress')).toBe(0);
  });
});

describe('exporter isolation and single-flight', () => {
  const config = parseConfig({});
  const model = {
    state: { state: emptyState(), stateProblem: null, stateMissing: true, recentRuns: [], historyProblem: null, journal: null, journalProblem: null, corruptFiles: [], dirError: null, untrusted: null, lastGood: null, runHolder: null },
    system: { generation: 7, generationTimestamp: new Date(0), generations: 7, rebootRequired: false, activationPending: false, reboot: { booted: null, running: null, next: null, reasons: [] }, profilesError: null, runError: null },
    pr: null,
    recheck: () => Promise.resolve(),
  } as unknown as HostModel;

  it('a throwing collector is reported failed alone and emits nothing', async () => {
    const boom: Collector = {
      name: 'runs',
      collect(_ctx, emit) {
        emit('nixos_desync_run_in_progress', {}, 1);
        throw new Error('boom');
      },
    };
    const { systemCollector } = await import('../../src/metrics/system.js');
    const e = createMetricsExporter({ config, model, logger: silentLogger, processMetrics: false, collectors: [boom, systemCollector()] });
    const t = await e.metrics();
    expect(sample(t, 'nixos_desync_collector_success{collector="runs"}')).toBe(0);
    expect(sample(t, 'nixos_desync_collector_success{collector="system"}')).toBe(1);
    expect(sample(t, 'nixos_desync_system_generation')).toBe(7);
    expect(t).not.toMatch(/^nixos_desync_run_in_progress /m);
    expect(e.lastOutcome.runs).toMatch(/boom/);
  });

  it('exporter.runtimeMetrics "all" keeps every prom-client runtime series (minimal is the default)', async () => {
    const all = createMetricsExporter({ config: parseConfig({ exporter: { runtimeMetrics: 'all' } }), model, logger: silentLogger, collectors: [] });
    const minimal = createMetricsExporter({ config, model, logger: silentLogger, collectors: [] });
    const [a, m] = [await all.metrics(), await minimal.metrics()];
    expect(a).toMatch(/^nodejs_heap_size_used_bytes /m);
    expect(m).not.toMatch(/^nodejs_heap_size_used_bytes /m);
    expect(m).toMatch(/^process_resident_memory_bytes /m);
    expect(a).not.toMatch(/nodejs_active_handles_total/);
  });

  it('concurrent scrapes share one collection', async () => {
    let calls = 0;
    const counting: Collector = { name: 'system', collect: () => (calls++, null) };
    const e = createMetricsExporter({ config, model, logger: silentLogger, processMetrics: false, collectors: [counting] });
    const texts = await Promise.all(Array.from({ length: 20 }, () => e.metrics()));
    expect(calls).toBe(1);
    expect(new Set(texts).size).toBe(1);
    await e.metrics();
    expect(calls).toBe(2);
  });

  it('with cacheMs, a rendering is reused only while the model and the clock second are unchanged', async () => {
    let calls = 0;
    const counting: Collector = { name: 'system', collect: () => (calls++, null) };
    const m = { ...model } as { state: unknown; system: unknown; pr: unknown; flake: unknown };
    let t = Date.parse('2026-01-01T00:00:00.200Z');
    const e = createMetricsExporter({ config, model: m as unknown as HostModel, logger: silentLogger, processMetrics: false, collectors: [counting], cacheMs: 60_000, now: () => new Date(t) });
    await e.metrics();
    await e.metrics();
    expect(calls).toBe(1);
    m.system = { ...(m.system as object) }; // a watcher refresh replaces the snapshot
    await e.metrics();
    expect(calls).toBe(2);
    t += 1000; // behind_seconds and other clock-derived values move with the second
    await e.metrics();
    expect(calls).toBe(3);
    await e.metrics();
    expect(calls).toBe(3);
    m.flake = { file: '/etc/nixos/flake.lock', inputs: [], error: null }; // exporter.flakeLock re-read
    await e.metrics();
    expect(calls).toBe(4);
  });
});
