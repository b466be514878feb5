// Step 8 failed (activation or health gate) or the run was interrupted after the activation:
// the verdict goes into the journal first (a kill -9 inside the rollback loses nothing), the
// previous toplevel is activated again under its own timeout (no SIGTERM/SIGINT cancels it)
// and confirmed, then the previous set is restored. A rollback that fails or cannot be
// confirmed is `rollback_failed`: the journal keeps the activation for `recover`.
import { errorMessage } from '../../util/errors.js';
import { failpoint } from '../../util/failpoint.js';
import type { Journal, MachineState, RollbackReason, RunResult } from '../../state/model.js';
import type { SystemSide } from '../../system/system.js';
import type { CallOptions } from '../../nix/adapter.js';
import { timed, type RunContext } from '../context.js';
import { abandonCandidateSet, previousSet } from './restore.js';
import { withRejected } from '../../state/rejected.js';
import { shielded } from '../../util/shield.js';

export type Verdict = NonNullable<Journal['verdict']>;

/** Activates `target` again and confirms it; never throws. */
export async function rollbackSystem(system: SystemSide, target: string | null, failed: string, o: CallOptions): Promise<{ confirmed: boolean; line: string }> {
  try {
    return { confirmed: true, line: await shielded(o.shield, () => system.rollback(target, failed, o)) };
  } catch (err) {
    return { confirmed: false, line: errorMessage(err) };
  }
}

/**
 * What a verdict and the rollback's outcome make of a run, applied to `state`: a confirmed
 * rollback after a verdict is `rolled_back` (counted, rollbacks.last); an unconfirmed one is
 * `rollback_failed` (never counted as a rollback); an interruption is a `failure`. The
 * candidate of a verdict is rejected either way (the verdict stands).
 */
export function applyVerdict(state: MachineState, v: Verdict | null, run: { runId: string; confirmed: boolean }): RunResult {
  if (v?.reason) {
    if (v.candidate) rejectCandidate(state, v.candidate, run.runId, v.at, v.reason);
    if (run.confirmed) {
      state.rollbacks.total[v.reason] += 1;
      state.rollbacks.last = { runId: run.runId, at: v.at, reason: v.reason, toplevel: v.toplevel, previous: v.previous, error: v.error };
    }
  }
  if (!run.confirmed) return 'rollback_failed';
  return v?.reason ? 'rolled_back' : 'failure';
}

export function rejectCandidate(state: MachineState, c: { id: string; revision: string; path: string }, runId: string, at: string, reason: RollbackReason): void {
  state.rejected = withRejected(state.rejected, { id: c.id, revision: c.revision, path: c.path, runId, at, reason });
}

/** `reason` null: an interruption, not a verdict (nothing rejected or counted). Returns the outcome for the run's message. */
export async function rollbackRun(ctx: RunContext, reason: RollbackReason | null, failure: string): Promise<string> {
  const { res, next, log, system } = ctx;
  const toplevel = ctx.built!.toplevel!;
  const c = ctx.candidate;
  const verdict: Verdict = {
    reason, at: ctx.now().toISOString(), error: failure.slice(0, 2000), candidate: c ? { id: c.id, revision: c.revision, path: c.path } : null, toplevel, previous: ctx.previous,
  };
  await ctx.saveJournal({ stage: 'rollback', child: null, verdict });
  failpoint('before-rollback');
  const r = await timed(ctx, 'rollback', () => rollbackSystem(system, ctx.previous, toplevel, ctx.uninterruptible('system')));
  failpoint('after-rollback');
  if (r.confirmed) {
    // Confirmed: nothing is left for recovery to roll back; the set (with the target's root) goes.
    await ctx.saveJournal({ activation: null });
    await abandonCandidateSet(ctx);
  } else {
    // The pins show the committed set again; the run's set keeps the rollback target rooted for `recover`.
    await ctx.source.restore(previousSet(ctx), res.runId, { timeoutMs: ctx.call('build').timeoutMs });
  }
  res.result = applyVerdict(next, verdict, { runId: res.runId, confirmed: r.confirmed });
  if (!r.confirmed) {
    const outcome = `ROLLBACK FAILED: ${r.line}; the previous pin set was restored, but ${toplevel} may still be active and is unverified: ` +
      `\`nixos-desync recover\` (and the next run) try again to activate ${ctx.previous ?? 'a verified system'}`;
    log.error(`rollback   ${outcome}`, { stage: 'rollback', previous: ctx.previous });
    return reason === null ? outcome : `${outcome}. Candidate ${c?.revision ?? '?'} is rejected`;
  }
  const outcome = `${r.line}; the previous pin set was restored`;
  log.warn(`rollback   ${outcome}`, { stage: 'rollback', previous: ctx.previous });
  if (reason === null) return `${outcome} (interrupted: the candidate is not rejected)`;
  return `${outcome}. Candidate ${c?.revision ?? '?'} is rejected: later runs skip it (until \`nixos-desync upgrade --retry\`) and try the next different candidate`;
}
