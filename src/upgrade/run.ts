// One run of the desync upgrade loop (DESIGN.md "The run"): open the run (lock, recovery,
// state, journal), then its stages in order, each one small module in ./stages, then record.
import { acquireLock, type LockOwner } from '../state/lock.js';
import type { Journal, MachineState } from '../state/model.js';
import { createChannelSource } from '../source/channel.js';
import { createNixosSystem } from '../system/nixos.js';
import { DesyncError, errorMessage, isDesyncError } from '../util/errors.js';
import { failpoint } from '../util/failpoint.js';
import { processStartTime } from '../util/proc.js';
import { makeRunId, rollbackReasonOf, stage, timeoutMs, type RunContext, type UpgradeDeps, type UpgradeOptions, type UpgradeResult } from './context.js';
import { recoverInterruptedRun } from './recover.js';
import { verifiedBaselineStage } from './stages/baseline.js';
import { fetchStage } from './stages/fetch.js';
import { candidateStage } from './stages/candidate.js';
import { gateStage } from './stages/gate.js';
import { decideStage, settleUncommitted } from './stages/decide.js';
import { buildStage } from './stages/build.js';
import { commitStage } from './stages/commit.js';
import { activateStage } from './stages/activate.js';
import { verifyStage } from './stages/verify.js';
import { holdBackStage } from './stages/holdback.js';
import { recordRun } from './stages/record.js';
import { rebootAfterRun, rebootStage } from './stages/reboot.js';
import { bootPathStage } from './stages/boot-path.js';
import { rollbackRun } from './stages/rollback.js';
import { holdRun, rolloutStage } from './stages/rollout.js';
import { abandonCandidateSet } from './stages/restore.js';

export { STAGES, makeRunId, type StageName as Stage, type UpgradeDeps, type UpgradeResult } from './context.js';

export async function runUpgrade(deps: UpgradeDeps, opts: UpgradeOptions = {}): Promise<UpgradeResult> {
  const now = deps.now ?? (() => new Date());
  const dryRun = opts.dryRun ?? false;
  const retry = opts.retry ?? false;
  const t0 = now();
  // Durations come from the monotonic clock; `now` (the wall clock) only dates the run.
  const m0 = performance.now();
  const res: UpgradeResult = {
    exitCode: 1, result: 'failure', dryRun, runId: makeRunId(t0), startedAt: t0.toISOString(), durationSeconds: 0,
    stages: {}, candidate: null, desyncs: [], evaluations: 0, error: null, stateProblems: [], recoveredRun: null,
  };
  // A dry run takes no lock and writes nothing (it may run beside the timer's run).
  if (dryRun) return dryRunUpgrade(deps, res, now, retry, m0);
  // Before the lock nothing inside the state directory changes: only its existence and safety.
  await deps.store.prepareDir();
  const lock = await acquireLock(deps.store.paths.lock, 'upgrade', { runId: res.runId });
  failpoint('after-lock');
  try {
    let ctx: RunContext;
    try {
      ctx = await openRun(deps, res, now, false, lock.recoveredFrom, retry);
    } catch (err) {
      // Every run that took the lock is recorded, also when it failed before its first stage.
      await recordEarlyFailure(deps, res, err, now, m0);
      return res;
    }
    try {
      await verifiedBaselineStage(ctx);
      await stage(ctx, 'fetch', fetchStage);
      failpoint('after-fetch');
      await stage(ctx, 'candidate', candidateStage);
      await stage(ctx, 'rollout', rolloutStage);
      await stage(ctx, 'gate', gateStage);
      decideStage(ctx);
      await stage(ctx, 'system_build', buildStage);
      failpoint('after-system-build');
      if (ctx.system.gated) await bootPathStage(ctx);
      if (ctx.system.gated && ctx.bootPath === null) {
        await stage(ctx, 'activate', activateStage);
        // Step 8b: a failure claimed by desyncs that moved holds those back and tries once more.
        await stage(ctx, 'health', verifyStage).catch((err: unknown) => holdBackStage(ctx, err));
      }
      await stage(ctx, 'commit', commitStage);
      await rebootStage(ctx);
      succeed(ctx);
    } catch (err) {
      await fail(ctx, err);
    } finally {
      res.durationSeconds = (performance.now() - m0) / 1000;
      // An unconfirmed activation, or a committed one without its boot entry, stays in the journal for `recover` (the run is recorded once: its id is in the history).
      await recordRun(ctx.store, ctx.next, res, { removeJournal: (ctx.committed && ctx.finalized) || ctx.journal.activation === null });
    }
    return res;
  } finally {
    await lock.release();
    // Step 9b's reboot: only once the run is recorded and the lock released (it may end this process).
    if (res.reboot?.rebooting) await rebootAfterRun(deps, res);
  }
}

/** A dry run: the gates and the decision, from the state as it is; no lock, no write of any kind. */
async function dryRunUpgrade(deps: UpgradeDeps, res: UpgradeResult, now: () => Date, retry: boolean, m0: number): Promise<UpgradeResult> {
  let ctx: RunContext;
  try {
    await deps.store.checkDir();
    ctx = await openRun(deps, res, now, true, null, retry);
  } catch (err) {
    res.error = resultError(err);
    deps.logger.error(res.error.message, { code: res.error.code });
    return res;
  }
  try {
    await stage(ctx, 'fetch', fetchStage);
    await stage(ctx, 'candidate', candidateStage);
    await stage(ctx, 'rollout', rolloutStage);
    await stage(ctx, 'gate', gateStage);
    decideStage(ctx);
    finishDryRun(ctx);
  } catch (err) {
    await fail(ctx, err);
  } finally {
    res.durationSeconds = (performance.now() - m0) / 1000;
  }
  return res;
}

/** A run that took the lock but failed before its journal (layout, recovery, unsafe set): recorded as a failure. */
async function recordEarlyFailure(deps: UpgradeDeps, res: UpgradeResult, err: unknown, now: () => Date, m0: number): Promise<void> {
  // A run that cannot return to a verified system (the dead run's rollback failed again) is itself a failed rollback.
  res.result = isDesyncError(err, 'E_ROLLBACK') ? 'rollback_failed' : 'failure';
  res.exitCode = 1;
  res.error = resultError(err);
  deps.logger.error(res.error.message, { code: res.error.code });
  res.durationSeconds = (performance.now() - m0) / 1000;
  const read = await deps.store.readState({ repair: false });
  if (read.problems.length > 0) {
    // state.json cannot be trusted (the exporter reports it): keep it as it is, record the run in the history only.
    deps.logger.warn(`run ${res.runId} is recorded in the history only: ${read.problems.map((p) => `${p.file} ${p.message}`).join('; ')}`);
    await deps.store.appendHistory({ id: res.runId, at: res.startedAt, finishedAt: now().toISOString(), result: res.result, durationSeconds: res.durationSeconds, stages: {}, error: res.error.message.slice(0, 2000), exitCode: 1, candidate: null, desyncs: [], evaluations: 0 });
    return;
  }
  // The journal on disk (if any) is a dead run's that recovery has not finished: it stays for the next run.
  await recordRun(deps.store, read.value, res, { removeJournal: false });
}

/** Steps 1–2 after the lock: recover a dead run, read the committed state, start the journal. */
async function openRun(deps: UpgradeDeps, res: UpgradeResult, now: () => Date, dryRun: boolean, deadHolder: LockOwner | null, retry = false): Promise<RunContext> {
  const { config, store, logger: log } = deps;
  const { env, source, system } = sidesOf(deps);
  // The layout and temp cleanup only with the lock held (a dry run changes nothing).
  if (!dryRun) await store.ensureLayout();
  const recovered = await recoverInterruptedRun(store, source, log, now, { dryRun, deadHolder, newId: () => makeRunId(now()), system, systemTimeoutMs: timeoutMs(config, 'system'), shield: deps.shield });
  res.recoveredRun = recovered.id;
  // A run never starts from an unverified system.
  if (recovered.unverified !== null) throw unverifiedError(recovered.unverified);
  const read = await store.readState({ repair: !dryRun });
  res.stateProblems.push(...read.problems);
  for (const p of read.problems) {
    log.warn(`state file ${p.file} was ${p.message}${p.movedTo ? `; moved aside to ${p.movedTo}` : ''}; pins were re-read from the pin files`, { problem: p });
  }
  const prev: MachineState = read.value;
  if (prev.committed.setId !== null) await store.verifySet(prev.committed.setId);
  const journal: Journal = {
    version: 1, runId: res.runId, pid: process.pid, pidStartTime: processStartTime(process.pid), startedAt: res.startedAt,
    stage: 'fetch', previousSetId: prev.committed.setId, candidateSetId: null, child: null, activation: null, verdict: null,
  };
  const saveJournal = async (patch: Partial<Journal>): Promise<void> => {
    Object.assign(journal, patch);
    if (!dryRun) await store.writeJournal(journal);
  };
  const onSpawn = (pgid: number): void => {
    void saveJournal({ child: { pgid, startTime: processStartTime(pgid) } }).catch(() => undefined);
  };
  const ctx: RunContext = {
    config, nix: deps.nix, run: deps.run, store, log, source, system, env, signal: deps.signal, now, dryRun, retry, res,
    prev, next: structuredClone(prev), journal,
    candidate: null, gate: [], decision: null, built: null, previous: null, baseline: [], activated: false, committed: false, finalized: false, bootPath: null,
    saveJournal,
    call: (key) => ({ timeoutMs: timeoutMs(config, key), signal: deps.signal, onSpawn }),
    uninterruptible: (key) => ({ timeoutMs: timeoutMs(config, key), onSpawn, shield: deps.shield }),
  };
  await saveJournal({});
  failpoint('after-journal');
  return ctx;
}

function finishDryRun(ctx: RunContext): UpgradeResult {
  ctx.log.info('dry run    stopping before the system build; nothing was changed', { stage: 'dry-run' });
  ctx.res.result = ctx.decision!.breached.length > 0 ? 'breach' : 'success';
  ctx.res.exitCode = ctx.res.result === 'success' ? 0 : 1;
  return ctx.res;
}

function succeed(ctx: RunContext): void {
  const { res } = ctx;
  const breached = ctx.decision!.breached;
  res.result = breached.length > 0 ? 'breach' : 'success';
  res.exitCode = res.result === 'success' ? 0 : 1;
  if (res.result === 'breach') {
    res.error = { code: 'E_BREACH', message: `desync ${breached.join(', ')} breached its budget; onBreach is "continue": it keeps its stale pin` };
    ctx.log.error(res.error.message, { code: res.error.code });
  }
}

async function fail(ctx: RunContext, err: unknown): Promise<void> {
  // Held by the rollout (step 9d): not a failure; nothing changes, exit 0.
  if (isDesyncError(err, 'E_HELD')) return holdRun(ctx, err);
  const { res } = ctx;
  // A run that could not return to the verified system is itself a failed rollback.
  if (res.result !== 'breach') res.result = isDesyncError(err, 'E_ROLLBACK') ? 'rollback_failed' : 'failure';
  res.exitCode = 1;
  let message = errorMessage(err);
  const reason = rollbackReasonOf(err);
  if (ctx.activated && !ctx.committed && !ctx.dryRun) {
    message = `${message}\n${await rollbackRun(ctx, reason, message)}`;
  } else if (!ctx.dryRun && !ctx.committed && ctx.journal.candidateSetId !== null) {
    await abandonCandidateSet(ctx);
  }
  settleUncommitted(ctx);
  res.error = resultError(err, message);
  ctx.log.error(res.error.message, { code: res.error.code });
}

/**
 * Step 2 alone (`nixos-desync recover`, the module's boot-time unit): under the lock, finish or
 * roll back a run that died, and record it. Returns its id, or null when there was none.
 */
export async function recoverOnly(deps: UpgradeDeps): Promise<string | null> {
  const { config, store } = deps;
  const now = deps.now ?? (() => new Date());
  await store.prepareDir();
  const lock = await acquireLock(store.paths.lock, 'recover');
  try {
    await store.ensureLayout();
    const { source, system } = sidesOf(deps);
    const r = await recoverInterruptedRun(store, source, deps.logger, now, {
      deadHolder: lock.recoveredFrom, newId: () => makeRunId(now()), system, systemTimeoutMs: timeoutMs(config, 'system'), shield: deps.shield,
    });
    if (r.unverified !== null) throw unverifiedError(r.unverified);
    return r.id;
  } finally {
    await lock.release();
  }
}

function unverifiedError(why: string): DesyncError {
  return new DesyncError('E_ROLLBACK', `the system is unverified: ${why}; ` +
    'nothing else happens until it is: fix the cause (see `nixos-desync status`), then run `nixos-desync recover`');
}

/** The run's environment, source and system side: the injected ones, else channel mode's defaults (wire.ts picks flake). */
function sidesOf(deps: UpgradeDeps): Pick<RunContext, 'env' | 'source' | 'system'> {
  const env = deps.env ?? process.env;
  return {
    env,
    source: deps.source ?? createChannelSource({ config: deps.config, nix: deps.nix, store: deps.store }),
    system: deps.system ?? createNixosSystem({ config: deps.config, run: deps.run, env }),
  };
}

/** The result's error: the DesyncError's code (else E_INTERNAL) and the message (default: the error's). */
function resultError(err: unknown, message = errorMessage(err)): { code: string; message: string } {
  return { code: isDesyncError(err) ? err.code : 'E_INTERNAL', message };
}
