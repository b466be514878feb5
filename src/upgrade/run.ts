// One run of the desync upgrade loop (DESIGN.md "The run", steps 1–9), wired from its parts:
// fetch → candidate → gate → decide → system build (candidate pins visible) → commit → activate.
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { Candidate, NixAdapter } from '../nix/adapter.js';
import type { StateStore, StateProblem } from '../state/store.js';
import type { Journal, MachineState, RunDesyncOutcome, RunRecord, RunResult as RunOutcome } from '../state/model.js';
import { acquireLock } from '../state/lock.js';
import { DesyncError, errorMessage, isDesyncError } from '../util/errors.js';
import { describeFailure, tailLines, type Runner } from '../util/exec.js';
import { formatSeconds, parseDuration } from '../util/duration.js';
import type { Logger } from '../util/log.js';
import { processStartTime } from '../util/proc.js';
import { failpoint } from '../util/failpoint.js';
import { decide, type GateOutcome } from './policy.js';
import { recoverInterruptedRun, restorePins } from './recover.js';

export const STAGES = ['fetch', 'candidate', 'gate', 'system_build', 'commit', 'activate'] as const;
export type Stage = (typeof STAGES)[number];

export interface UpgradeDeps {
  config: Config;
  nix: NixAdapter;
  run: Runner;
  store: StateStore;
  logger: Logger;
  now?: () => Date;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

export interface UpgradeResult {
  exitCode: number;
  result: RunOutcome;
  dryRun: boolean;
  runId: string;
  startedAt: string;
  durationSeconds: number;
  stages: Partial<Record<Stage, number>>;
  candidate: { path: string; revision: string } | null;
  desyncs: RunDesyncOutcome[];
  evaluations: number;
  error: { code: string; message: string } | null;
  stateProblems: StateProblem[];
  recoveredRun: string | null;
}

export function makeRunId(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z') + '-' + randomBytes(3).toString('hex');
}

/** First failing attribute or check of a desync, as one line. */
function firstLine(s: string): string {
  return s.split('\n').find((l) => l.trim() !== '')?.trim() ?? s;
}

export async function runUpgrade(deps: UpgradeDeps, opts: { dryRun?: boolean } = {}): Promise<UpgradeResult> {
  const { config, nix, store, logger: log } = deps;
  const now = deps.now ?? (() => new Date());
  const dryRun = opts.dryRun ?? false;
  const env = deps.env ?? process.env;
  const ms = (d: string): number => parseDuration(d)!;
  const t0 = now();
  const res: UpgradeResult = {
    exitCode: 1,
    result: 'failure',
    dryRun,
    runId: makeRunId(t0),
    startedAt: t0.toISOString(),
    durationSeconds: 0,
    stages: {},
    candidate: null,
    desyncs: [],
    evaluations: 0,
    error: null,
    stateProblems: [],
    recoveredRun: null,
  };

  await store.ensureLayout();
  const lock = await acquireLock(store.paths.lock, dryRun ? 'upgrade --dry-run' : 'upgrade');
  failpoint('after-lock');
  try {
    const recovered = await recoverInterruptedRun(store, log, now, { dryRun });
    res.recoveredRun = recovered;
    const read = await store.readState({ repair: !dryRun });
    res.stateProblems.push(...read.problems);
    for (const p of read.problems) {
      log.warn(`state file ${p.file} was ${p.message}${p.movedTo ? `; moved aside to ${p.movedTo}` : ''}; pins were re-read from the pin files`, { problem: p });
    }
    const prev: MachineState = read.value;
    if (prev.committed.setId !== null) await store.verifySet(prev.committed.setId);
    const next: MachineState = structuredClone(prev);
    const journal: Journal = {
      version: 1,
      runId: res.runId,
      pid: process.pid,
      pidStartTime: processStartTime(process.pid),
      startedAt: res.startedAt,
      stage: 'fetch',
      previousSetId: prev.committed.setId,
      candidateSetId: null,
      child: null,
    };
    const saveJournal = async (patch: Partial<Journal>): Promise<void> => {
      Object.assign(journal, patch);
      if (!dryRun) await store.writeJournal(journal);
    };
    const onSpawn = (pgid: number): void => {
      void saveJournal({ child: { pgid, startTime: processStartTime(pgid) } }).catch(() => undefined);
    };
    await saveJournal({});
    failpoint('after-journal');

    const stage = async <T>(name: Stage, fn: () => Promise<T>): Promise<T> => {
      if (deps.signal?.aborted) throw new DesyncError('E_INTERRUPTED', `interrupted before stage ${name}; the committed pin set is kept`);
      const s = Date.now();
      await saveJournal({ stage: name, child: null });
      try {
        return await fn();
      } finally {
        res.stages[name] = (Date.now() - s) / 1000;
      }
    };

    let committedAfter = false;
    try {
      // 3. Fetch.
      await stage('fetch', async () => {
        if (!config.channel.update) {
          log.info('fetch      skipped (channel.update is false)', { stage: 'fetch', skipped: true });
          return;
        }
        if (dryRun) {
          log.info(`fetch      skipped (dry run: nix-channel --update ${config.channel.name} not run)`, { stage: 'fetch', skipped: true });
          return;
        }
        const s = Date.now();
        await nix.updateChannel(config.channel.name, { timeoutMs: ms(config.timeouts.channel), signal: deps.signal, onSpawn });
        log.info(`fetch      nix-channel --update ${config.channel.name} ok (${formatSeconds((Date.now() - s) / 1000)})`, { stage: 'fetch' });
      });
      failpoint('after-fetch');

      // 4. Candidate, rooted at once so a concurrent GC cannot delete it mid-run.
      const candidate: Candidate = await stage('candidate', async () => {
        const c = await nix.resolveCandidate(config.nixpkgs, { timeoutMs: ms(config.timeouts.channel), signal: deps.signal, onSpawn });
        if (!dryRun) {
          await store.createSet(res.runId);
          await saveJournal({ candidateSetId: res.runId });
          failpoint('after-candidate-set');
          await nix.addRoot(c.storePath, join(store.setDir(res.runId), 'roots', 'candidate'), { timeoutMs: ms(config.timeouts.build), signal: deps.signal });
          failpoint('after-candidate-root');
        }
        log.info(`candidate  ${c.path} (revision ${c.revision})`, { stage: 'candidate', path: c.path, revision: c.revision });
        return c;
      });
      res.candidate = { path: candidate.path, revision: candidate.revision };

      // 5. Gate every desync: one evaluation + keep-going build, then the checks.
      const names = Object.keys(config.desyncs).sort();
      const gate: GateOutcome[] = await stage('gate', () => runGate(deps, names, candidate, res, onSpawn));
      failpoint('after-gate');
      // Gate results cut short by an interruption say nothing about the desyncs: don't record them.
      if (deps.signal?.aborted) throw new DesyncError('E_INTERRUPTED', 'interrupted during the gate; the committed pin set is kept');

      // 6. New pin set.
      const decision = decide({ config, prevPins: prev.committed.pins, prevRecords: prev.desyncs, gate, candidate, now: now() });
      res.desyncs = decision.outcomes;
      for (const o of decision.outcomes) {
        const cfg = config.desyncs[o.name]!;
        const budget = cfg.maxLagRebuilds === null ? '∞' : String(cfg.maxLagRebuilds);
        if (o.result === 'passed') {
          log.info(`pin        ${o.name}: follows ${candidate.revision} (lag 0/${budget})`, { stage: 'decide', desync: o.name, lag: 0 });
        } else if (o.revision === null) {
          log.error(`pin        ${o.name}: failed with no known-good pin to stay on`, { stage: 'decide', desync: o.name });
        } else {
          const rec = decision.records[o.name]!;
          const behind = rec.behindSince ? formatSeconds((now().getTime() - Date.parse(rec.behindSince)) / 1000) : '0s';
          log.info(`pin        ${o.name}: stays on ${o.revision} (lag ${o.lagRebuilds}/${budget}, behind ${behind}${cfg.maxBehind ? `/${cfg.maxBehind}` : ''})${o.breached ? ' — BREACH: ' + rec.breachReason : ''}`,
            { stage: 'decide', desync: o.name, lag: o.lagRebuilds, breached: o.breached });
        }
      }
      if (!dryRun) next.desyncs = decision.records;

      if (decision.noPin.length > 0) {
        throw new DesyncError('E_NO_PIN',
          `desync ${decision.noPin.join(', ')} failed its gate and has no known-good pin yet (first run): ` +
          'fix the failing package or check, or remove the desync from the config, then run again');
      }
      const breachedNow = decision.breached;
      if (breachedNow.length > 0 && config.onBreach === 'fail') {
        res.result = 'breach';
        throw new DesyncError('E_BREACH',
          `desync ${breachedNow.join(', ')} breached its budget (${breachedNow.map((n) => decision.records[n]!.breachReason).join('; ')}); ` +
          'onBreach is "fail": the system is not rebuilt. Fix the package, raise the budget, or remove the desync');
      }

      if (dryRun) {
        log.info('dry run    stopping before the system build; nothing was changed', { stage: 'dry-run' });
        res.result = breachedNow.length > 0 ? 'breach' : 'success';
        res.exitCode = res.result === 'success' ? 0 : 1;
        return res;
      }

      // 7. Candidate pins visible to the system build; restored exactly if it fails.
      await stage('system_build', async () => {
        await store.writeSetPins(res.runId, decision.pins);
        failpoint('after-set-pins');
        for (const [name, pin] of Object.entries(decision.pins)) {
          await nix.addRoot(pin.storePath, join(store.setDir(res.runId), 'roots', name), { timeoutMs: ms(config.timeouts.build), signal: deps.signal });
        }
        failpoint('after-set-roots');
        await store.pointPinsAt(res.runId);
        failpoint('after-pins-swap');
        const r = await deps.run(config.system.build, { env, timeoutMs: ms(config.timeouts.system), signal: deps.signal, onSpawn });
        if (r.exitCode !== 0 || r.timedOut) {
          await restorePins(store, prev.committed.setId, res.runId);
          throw new DesyncError('E_SYSTEM_BUILD',
            `system build (${config.system.build.join(' ')}) failed: ${describeFailure(r)}; the previous pin set was restored\n${tailLines(r.stderr || r.stdout, 20)}`);
        }
        log.info(`system     ${config.system.build.join(' ')} ok (${formatSeconds(r.durationMs / 1000)})`, { stage: 'system_build' });
      });
      failpoint('after-system-build');

      // 8. Commit (state.json is the commit point), then activate.
      await stage('commit', async () => {
        next.committed = { setId: res.runId, at: now().toISOString(), pins: decision.pins };
        await store.writeState(next, 'mid-state-write');
        committedAfter = true;
        failpoint('after-commit');
        for (const id of await store.listSets()) if (id !== res.runId) await store.removeSet(id);
        failpoint('after-old-sets-removed');
        log.info(`commit     pin set ${res.runId} committed (${Object.keys(decision.pins).length} pins)`, { stage: 'commit', setId: res.runId });
      });

      if (config.system.activate !== null) {
        const activate = config.system.activate;
        await stage('activate', async () => {
          const r = await deps.run(activate, { env, timeoutMs: ms(config.timeouts.system), signal: deps.signal, onSpawn });
          if (r.exitCode !== 0 || r.timedOut) {
            throw new DesyncError('E_ACTIVATE', `activation (${activate.join(' ')}) failed: ${describeFailure(r)}\n${tailLines(r.stderr || r.stdout, 20)}`);
          }
          log.info(`activate   ${activate.join(' ')} ok (${formatSeconds(r.durationMs / 1000)})`, { stage: 'activate' });
        });
        failpoint('after-activate');
      }
      res.result = breachedNow.length > 0 ? 'breach' : 'success';
      res.exitCode = res.result === 'success' ? 0 : 1;
      if (res.result === 'breach') {
        res.error = { code: 'E_BREACH', message: `desync ${breachedNow.join(', ')} breached its budget; onBreach is "continue": it keeps its stale pin` };
        log.error(res.error.message, { code: res.error.code });
      }
    } catch (err) {
      if (res.result !== 'breach') res.result = 'failure';
      res.exitCode = 1;
      res.error = { code: isDesyncError(err) ? err.code : 'E_INTERNAL', message: errorMessage(err) };
      log.error(res.error.message, { code: res.error.code });
      if (!dryRun && !committedAfter && journal.candidateSetId !== null) {
        await restorePins(store, prev.committed.setId, res.runId);
      }
    } finally {
      res.durationSeconds = (now().getTime() - t0.getTime()) / 1000;
      if (!dryRun) await record(store, next, res);
    }
    return res;
  } finally {
    await lock.release();
  }
}

async function runGate(deps: UpgradeDeps, names: string[], candidate: Candidate, res: UpgradeResult, onSpawn: (pgid: number) => void): Promise<GateOutcome[]> {
  const { config, nix, logger: log } = deps;
  const env = deps.env ?? process.env;
  if (names.length === 0) return [];
  const s = Date.now();
  const report = await nix.buildGates(
    names.map((n) => ({ desync: n, nixpkgs: candidate.path, attrs: config.desyncs[n]!.requireBuilds, config: config.desyncs[n]!.nixpkgsConfig })),
    { timeoutMs: parseDuration(config.timeouts.build)!, signal: deps.signal, onSpawn },
  );
  res.evaluations = report.evaluations;
  log.info(`gate       built requireBuilds of ${names.length} desync(s) with ${report.evaluations} evaluation(s) (${formatSeconds((Date.now() - s) / 1000)})`,
    { stage: 'gate', evaluations: report.evaluations });
  const out: GateOutcome[] = [];
  for (const name of names) {
    const t = Date.now();
    const b = report.results.get(name) ?? { desync: name, ok: false, attrs: [], error: 'no build result' };
    if (!b.ok) {
      const failed = b.attrs.filter((a) => !a.ok);
      const error = b.error ?? failed.map((a) => `${a.attr}: ${firstLine(a.error ?? 'failed')}`).join('; ');
      log.info(`gate       ${name}: FAILED — ${error}`, { stage: 'gate', desync: name, result: 'failed' });
      if (b.error && b.error.includes('\n')) log.info(indent(b.error), { stage: 'gate', desync: name });
      for (const a of failed) {
        if (a.failedAt === 'eval' && a.error?.includes('\n')) log.info(indent(a.error), { stage: 'gate', desync: name, attr: a.attr });
        if (a.logTail) log.info(`           build log of ${a.attr} (last lines):\n${indent(a.logTail)}`, { stage: 'gate', desync: name, attr: a.attr });
      }
      out.push({ name, passed: false, error });
      continue;
    }
    const outPaths = b.attrs.flatMap((a) => a.outputs);
    let checkError: string | undefined;
    for (const check of config.desyncs[name]!.checks) {
      const r = await deps.run(check, {
        env: { ...env, NIXOS_DESYNC_NAME: name, NIXOS_DESYNC_CANDIDATE: candidate.path, NIXOS_DESYNC_OUT_PATHS: outPaths.join(' ') },
        timeoutMs: parseDuration(config.timeouts.check)!,
        signal: deps.signal,
        onSpawn,
      }).catch((err: unknown) => ({ failedToStart: errorMessage(err) }) as const);
      if ('failedToStart' in r) {
        checkError = `check ${check[0]}: ${r.failedToStart}`;
        break;
      }
      if (r.exitCode !== 0 || r.timedOut) {
        checkError = `check ${check.join(' ')}: ${describeFailure(r)}`;
        const tail = tailLines(r.stderr + '\n' + r.stdout, 10);
        log.info(`gate       ${name}: FAILED — ${checkError}${tail ? '\n' + indent(tail) : ''}`, { stage: 'gate', desync: name, result: 'failed' });
        break;
      }
    }
    if (checkError !== undefined) {
      out.push({ name, passed: false, error: checkError });
      continue;
    }
    const checks = config.desyncs[name]!.checks.length;
    log.info(`gate       ${name}: passed (${b.attrs.length} attr(s) built, ${checks} check(s)) (${formatSeconds((Date.now() - t) / 1000)})`,
      { stage: 'gate', desync: name, result: 'passed' });
    out.push({ name, passed: true });
  }
  return out;
}

function indent(s: string): string {
  return s.split('\n').map((l) => `           | ${l}`).join('\n');
}

/** 9. Records the run: counters in state.json, the run in the bounded history. */
async function record(store: StateStore, next: MachineState, res: UpgradeResult): Promise<void> {
  const finishedAt = new Date(Date.parse(res.startedAt) + res.durationSeconds * 1000).toISOString();
  const summary = {
    id: res.runId,
    at: res.startedAt,
    finishedAt,
    result: res.result,
    durationSeconds: res.durationSeconds,
    stages: res.stages as Record<string, number>,
    error: res.error ? res.error.message.slice(0, 2000) : null,
  };
  next.runs.total[res.result] += 1;
  next.runs.last = summary;
  if (res.result === 'success') next.runs.lastSuccessAt = finishedAt;
  await store.writeState(next);
  failpoint('after-record-state');
  res.stateProblems.push(
    ...(await store.appendHistory({ ...summary, exitCode: res.exitCode, candidate: res.candidate, desyncs: res.desyncs, evaluations: res.evaluations })),
  );
  failpoint('after-history');
  await store.removeJournal();
  failpoint('after-journal-removed');
}
