// Step 8 failed (activation or health gate): the previous set is restored byte-for-byte, the
// previous toplevel activated again, the candidate rejected; the run is `rolled_back`.
import { errorMessage } from '../../util/errors.js';
import type { RollbackReason } from '../../state/model.js';
import type { RunContext } from '../context.js';
import { abandonCandidateSet } from './restore.js';
import { withRejected } from '../../state/rejected.js';

/** `reason` null: an interruption, not a verdict (nothing rejected or counted). */
export async function rollbackRun(ctx: RunContext, reason: RollbackReason | null, failure: string): Promise<string> {
  const { res, next, log, system } = ctx;
  const toplevel = ctx.built!.toplevel!;
  const at = ctx.now().toISOString();
  await abandonCandidateSet(ctx);
  let outcome: string;
  try {
    outcome = `${await system.rollback(ctx.previous, toplevel, ctx.call('system'))}; the previous pin set was restored`;
    log.warn(`rollback   ${outcome}`, { stage: 'rollback', previous: ctx.previous });
  } catch (err) {
    outcome = `ROLLBACK FAILED: ${errorMessage(err)}; the previous pin set was restored, but ${toplevel} may still be active: activate ${ctx.previous ?? 'a known-good generation'} by hand`;
    log.error(`rollback   ${outcome}`, { stage: 'rollback', previous: ctx.previous });
  }
  // The dead candidate is not what recovery should roll back again.
  await ctx.saveJournal({ activation: null });
  if (reason === null) return `${outcome} (interrupted: the candidate is not rejected)`;
  res.result = 'rolled_back';
  next.rollbacks.total[reason] += 1;
  next.rollbacks.last = { runId: res.runId, at, reason, toplevel, previous: ctx.previous, error: failure.slice(0, 2000) };
  if (ctx.candidate) next.rejected = withRejected(next.rejected, { id: ctx.candidate.id, revision: ctx.candidate.revision, path: ctx.candidate.path, runId: res.runId, at, reason });
  return `${outcome}. Candidate ${ctx.candidate?.revision ?? '?'} is rejected: later runs skip it (until \`nixos-desync upgrade --retry\`) and try the next different candidate`;
}
