// Step 8b: runtime hold-back. When every failure of the health gate is claimed by desyncs that
// moved in this run: roll back (confirmed), hold those desyncs at their pins as if they had
// failed their gate (lag + 1, budgets, breaches; stage `health`), build again, activate, gate
// again — once per run. Nothing claimed and `health.bisect` on: search the culprit by halving
// (bisect.ts). Anything else (attribute off, an unclaimed failure, a second failure) is the
// rollback and rejection of step 8.
import { isDesyncError } from '../../util/errors.js';
import { attribute, holdBackApplies, type DesyncClaims } from '../attribution.js';
import type { HoldBackOutcome, RunContext } from '../context.js';
import { pinIsCandidate } from '../policy.js';
import { keepFirstDecision } from './decide.js';
import { indent } from './gate.js';
import { bisectStage } from './bisect.js';
import { backToVerified, describeFailures, healthFailuresOf, tryWithHeld } from './trial.js';

export { healthFailuresOf } from './trial.js';

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
  if (a.culprits.size === 0 && ctx.config.health.bisect) return bisectStage(ctx, err, failures, moved);
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
    ctx.log.warn(`holdback   ${name}: held back at its pin — ${describeFailures(ev)}`,
      { stage: 'health', desync: name, result: 'held_back', evidence: ev.map((f) => `${f.kind} ${f.name}`) });
    for (const f of ev) if (f.tail) ctx.log.info(indent(f.tail), { stage: 'health', desync: name, kind: f.kind, name: f.name });
  }
  // Back to the verified system first; a rollback that fails is step 8's (fail() tries again and reports it).
  await backToVerified(ctx, err);
  const first = ctx.decision!;
  const r = await tryWithHeld(ctx, ctx.gate, new Set(culprits), (n) => `health: ${describeFailures(a.culprits.get(n)!)}`, outcome)
    .catch((e: unknown) => {
      // A breach of a culprit at its budget is recorded as for a failed gate; anything else blames nobody.
      if (!isDesyncError(e, 'E_BREACH')) keepFirstDecision(ctx, first);
      throw e;
    });
  if (!r.healthy) {
    // Not the culprits after all: their records stay as the gate left them; step 8 rejects the candidate.
    keepFirstDecision(ctx, first);
    throw r.err;
  }
  outcome.healthy = true;
  ctx.log.info(`holdback   healthy with ${culprits.join(', ')} held back: the host is upgraded`, { stage: 'health', result: 'passed' });
}

