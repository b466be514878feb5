// Step 8b's building blocks: return to the verified system after an unhealthy activation, and
// try the candidate again with some desyncs held back on their pins (decide, build, activate,
// gate). The hold-back (holdback.ts) tries once; the bisect (bisect.ts) tries halves.
import type { HealthFailure } from '../../system/system.js';
import { failpoint } from '../../util/failpoint.js';
import { rollbackReasonOf, stage, type HoldBackOutcome, type RunContext } from '../context.js';
import type { GateOutcome } from '../policy.js';
import { activateStage } from './activate.js';
import { buildStage } from './build.js';
import { decideStage } from './decide.js';
import { rejectCandidate, rollbackSystem } from './rollback.js';
import { errorMessage, isDesyncError } from '../../util/errors.js';
import { verifyStage } from './verify.js';

/** The gate's failures carried by a rollback error of the health gate (verify.ts), else null. */
export function healthFailuresOf(err: unknown): HealthFailure[] | null {
  if (rollbackReasonOf(err) !== 'health') return null;
  const f = (err as { details: Record<string, unknown> }).details.failures;
  return Array.isArray(f) ? (f as HealthFailure[]) : null;
}

/** One line per failure: `unit x.service (failed)`. */
export function describeFailures(failures: HealthFailure[]): string {
  return failures.map((f) => `${f.kind} ${f.name} (${f.reason})`).join('; ');
}

/**
 * Back to the verified system (confirmed) before another build of this run is activated.
 * Unconfirmed → `err` is thrown with the system still marked activated: step 8 tries again and reports it.
 */
export async function backToVerified(ctx: RunContext, err: unknown): Promise<void> {
  // Under its own timeout, never cancelled by a signal (as step 8's rollback).
  const r = await rollbackSystem(ctx.system, ctx.previous, ctx.built!.toplevel!, ctx.uninterruptible('system'));
  if (!r.confirmed) throw err;
  ctx.log.info(`rollback   ${r.line}`, { stage: 'health', previous: ctx.previous });
  ctx.activated = false;
  await ctx.saveJournal({ activation: null });
  failpoint('holdback-after-rollback');
}

/** How one try went: healthy, or the error of its activation or health gate (with the gate's failures). */
export type TryResult = { healthy: true } | { healthy: false; err: unknown; failures: HealthFailure[] };

/**
 * Decides again from the gate's outcomes `base` with `held` kept on their pins (failure stage
 * `health`, `why` their record's reason), builds, activates and gates. A failed activation or
 * health gate is an unhealthy result (the system stays activated for the caller); anything
 * else (a build failure, a breach, a signal) is thrown.
 */
export async function tryWithHeld(ctx: RunContext, base: GateOutcome[], held: ReadonlySet<string>, why: (name: string) => string, outcome: HoldBackOutcome): Promise<TryResult> {
  try {
    return await tryOnce(ctx, base, held, why, outcome);
  } catch (err) {
    rejectUntried(ctx, err);
    throw err;
  }
}

/**
 * The candidate failed its health gate and the try that could have saved it ended without a
 * verdict (its build failed, a culprit's breach stopped the run): the gate's verdict stands, so
 * the candidate is rejected as in step 8 — else the next run would activate it again (a storm).
 * An interruption is no verdict; a host still on a try's system is step 8's to roll back.
 */
function rejectUntried(ctx: RunContext, err: unknown): void {
  const c = ctx.candidate;
  if (ctx.activated || c === null || ctx.signal?.aborted || isDesyncError(err, 'E_INTERRUPTED')) return;
  rejectCandidate(ctx.next, c, ctx.res.runId, ctx.now().toISOString(), 'health');
  ctx.log.warn(`holdback   the try with desyncs held back ended without a verdict (${errorMessage(err).split('\n')[0]}): candidate ${c.revision} is rejected, as its health gate failed`, { stage: 'health', result: 'rejected' });
}

async function tryOnce(ctx: RunContext, base: GateOutcome[], held: ReadonlySet<string>, why: (name: string) => string, outcome: HoldBackOutcome): Promise<TryResult> {
  ctx.gate = base.map((g) => (held.has(g.name) ? { ...g, passed: false, error: why(g.name), stage: 'health' as const, runtimeFailure: true } : g));
  // The same pin rules, budgets and breaches as a failed gate (onBreach "fail" stops here).
  decideStage(ctx);
  await stage(ctx, 'system_build', buildStage);
  outcome.systemBuilds += 1;
  try {
    outcome.activations += 1;
    await stage(ctx, 'activate', activateStage);
    await stage(ctx, 'health', verifyStage);
    return { healthy: true };
  } catch (err) {
    if (rollbackReasonOf(err) === null) throw err;
    return { healthy: false, err, failures: healthFailuresOf(err) ?? [{ kind: 'check', name: 'activation', reason: 'the activation failed', tail: '' }] };
  }
}
