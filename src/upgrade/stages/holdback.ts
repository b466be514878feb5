// Step 8b: runtime hold-back. When every failure of the health gate is claimed by desyncs that
// moved in this run: roll back (confirmed), hold those desyncs at their pins as if they had
// failed their gate (lag + 1, budgets, breaches; stage `health`), build again, activate, gate
// again — once per run. Anything else (attribute off, an unclaimed failure, a second failure)
// is the rollback and rejection of step 8.
import type { HealthFailure } from '../../system/system.js';
import { isDesyncError } from '../../util/errors.js';
import { failpoint } from '../../util/failpoint.js';
import { attribute, holdBackApplies, type DesyncClaims } from '../attribution.js';
import { rollbackReasonOf, stage, type HoldBackOutcome, type RunContext } from '../context.js';
import { pinIsCandidate } from '../policy.js';
import { activateStage } from './activate.js';
import { buildStage } from './build.js';
import { decideStage, uncommittedRecords } from './decide.js';
import { indent } from './gate.js';
import { verifyStage } from './verify.js';
import { rollbackSystem } from './rollback.js';

/** The gate's failures carried by a health rollback error (verify.ts), else null. */
export function healthFailuresOf(err: unknown): HealthFailure[] | null {
  if (!isDesyncError(err) || rollbackReasonOf(err) !== 'health') return null;
  const f = err.details.failures;
  return Array.isArray(f) ? (f as HealthFailure[]) : null;
}

/** Desyncs whose pin this run moves (holding back the others changes nothing; a desync held by retryAfter did not move). */
export function movedDesyncs(ctx: RunContext): Set<string> {
  const moved = new Set<string>();
  for (const o of ctx.decision!.outcomes) {
    const prevPin = ctx.prev.committed.pins[o.name];
    if (o.result === 'passed' && (prevPin === undefined || !pinIsCandidate(prevPin, ctx.candidate!))) moved.add(o.name);
  }
  return moved;
}

function claimsOf(ctx: RunContext): Record<string, DesyncClaims> {
  return Object.fromEntries(Object.entries(ctx.config.desyncs).map(([n, d]) => [n, { units: d.units }]));
}

/** Rethrows `err` unless a hold-back applies; then rebuilds without the culprits and gates again. */
export async function holdBackStage(ctx: RunContext, err: unknown): Promise<void> {
  const failures = healthFailuresOf(err);
  if (!ctx.config.health.attribute || failures === null || ctx.dryRun) throw err;
  const moved = movedDesyncs(ctx);
  const a = attribute(failures, claimsOf(ctx), moved);
  // A desync that never pinned anything cannot be held back (no pin to stay on).
  const noPin = [...a.culprits.keys()].filter((n) => ctx.prev.committed.pins[n] === undefined);
  if (!holdBackApplies(a) || noPin.length > 0) {
    const why = noPin.length > 0 ? `desync ${noPin.join(', ')} has no pin to stay on`
      : a.culprits.size === 0 ? 'no desync that moved claims the failures'
      : `not claimed by a desync that moved: ${a.unclaimed.map((f) => `${f.kind} ${f.name}`).join(', ')}`;
    ctx.log.info(`holdback   not applicable (${why}): the candidate is rolled back whole`, { stage: 'health', result: 'rejected' });
    throw err;
  }
  const culprits = [...a.culprits.keys()].sort();
  const outcome: HoldBackOutcome = { culprits: Object.fromEntries(a.culprits), activations: 1, systemBuilds: 1, healthy: false };
  ctx.res.holdBack = outcome;
  for (const name of culprits) {
    const ev = a.culprits.get(name)!;
    ctx.log.warn(`holdback   ${name}: held back at its pin — ${ev.map((f) => `${f.kind} ${f.name} (${f.reason})`).join('; ')}`,
      { stage: 'health', desync: name, result: 'held_back', evidence: ev.map((f) => `${f.kind} ${f.name}`) });
    for (const f of ev) if (f.tail) ctx.log.info(indent(f.tail), { stage: 'health', desync: name, kind: f.kind, name: f.name });
  }
  // Back to the verified system first; a rollback that fails is step 8's (fail() tries again and reports it).
  const toplevel = ctx.built!.toplevel!;
  // Under its own timeout, never cancelled by a signal (as step 8's rollback); unconfirmed → step 8 reports it.
  const r = await rollbackSystem(ctx.system, ctx.previous, toplevel, ctx.uninterruptible('system'));
  if (!r.confirmed) throw err;
  ctx.log.info(`rollback   ${r.line}`, { stage: 'health', previous: ctx.previous });
  ctx.activated = false;
  await ctx.saveJournal({ activation: null });
  failpoint('holdback-after-rollback');
  const first = ctx.decision!;
  const evidence = (n: string): string => `health: ${a.culprits.get(n)!.map((f) => `${f.kind} ${f.name} (${f.reason})`).join('; ')}`;
  ctx.gate = ctx.gate.map((g) => (a.culprits.has(g.name) ? { ...g, passed: false, error: evidence(g.name), stage: 'health' as const, runtimeFailure: true } : g));
  // The same pin rules, budgets and breaches as a failed gate (onBreach "fail" stops here).
  decideStage(ctx);
  try {
    await stage(ctx, 'system_build', buildStage);
    outcome.systemBuilds += 1;
    await stage(ctx, 'activate', activateStage);
    outcome.activations += 1;
    await stage(ctx, 'health', verifyStage);
    outcome.healthy = true;
    ctx.log.info(`holdback   healthy with ${culprits.join(', ')} held back: the host is upgraded`, { stage: 'health', result: 'passed' });
  } catch (e) {
    // Not the culprits after all: their records stay as the gate left them; step 8 rejects the candidate.
    if (!ctx.dryRun) ctx.next.desyncs = uncommittedRecords(ctx.prev.desyncs, first);
    throw e;
  }
}
