// Step 6: the new pin set from the gate (rules in policy.ts); stops the run on a missing pin
// or, with onBreach "fail", on a breach.
import { DesyncError } from '../../util/errors.js';
import { formatSeconds } from '../../util/duration.js';
import { decide, oneLag, type Decision } from '../policy.js';
import type { DesyncRecord } from '../../state/model.js';
import type { RunContext } from '../context.js';

export function decideStage(ctx: RunContext): void {
  const { config, log, res, prev, candidate } = ctx;
  const now = ctx.now();
  const decision = decide({ config, prevPins: prev.committed.pins, prevRecords: prev.desyncs, gate: ctx.gate, candidate: candidate!, now, retry: ctx.retry });
  ctx.decision = decision;
  res.desyncs = decision.outcomes;
  for (const o of decision.outcomes) {
    const cfg = config.desyncs[o.name]!;
    const budget = cfg.maxLagRebuilds === null ? '∞' : String(cfg.maxLagRebuilds);
    if (o.result === 'passed') {
      log.info(`pin        ${o.name}: follows ${candidate!.revision} (lag 0/${budget})`, { stage: 'decide', desync: o.name, lag: 0 });
    } else if (o.revision === null) {
      log.error(`pin        ${o.name}: failed with no known-good pin to stay on`, { stage: 'decide', desync: o.name });
    } else {
      const rec = decision.records[o.name]!;
      const behind = rec.behindSince ? formatSeconds((now.getTime() - Date.parse(rec.behindSince)) / 1000) : '0s';
      log.info(`pin        ${o.name}: stays on ${o.revision} (lag ${o.lagRebuilds}/${budget}, behind ${behind}${cfg.maxBehind ? `/${cfg.maxBehind}` : ''})${o.breached ? ' — BREACH: ' + rec.breachReason : ''}`,
        { stage: 'decide', desync: o.name, lag: o.lagRebuilds, breached: o.breached });
    }
  }
  // Every gate verdict is recorded whatever happens next (a breach must show; a passed gate
  // ends a breach); the pins move only at the commit (commit.ts).
  if (!ctx.dryRun) ctx.next.desyncs = uncommittedRecords(ctx.prev.desyncs, decision);

  if (decision.noPin.length > 0) {
    throw new DesyncError('E_NO_PIN',
      `desync ${decision.noPin.join(', ')} failed its gate and has no known-good pin yet (first run): ` +
      'fix the failing package or check, or remove the desync from the config, then run again');
  }
  if (decision.breached.length > 0 && config.onBreach === 'fail') {
    res.result = 'breach';
    throw new DesyncError('E_BREACH',
      `desync ${decision.breached.join(', ')} breached its budget (${decision.breached.map((n) => decision.records[n]!.breachReason).join('; ')}); ` +
      'onBreach is "fail": the system is not rebuilt. Fix the package, raise the budget, or remove the desync');
  }
}

/**
 * Desync records as they stand when this run's pins are not committed: each gate's verdict
 * counts (attempts, last attempt; a passed gate ends a breach, DESIGN.md step 6), while what
 * belongs to the pin stays with it: the lag, and the behind clock of a pin that did not move.
 */
export function uncommittedRecords(prev: Record<string, DesyncRecord>, decision: Decision): Record<string, DesyncRecord> {
  const out: Record<string, DesyncRecord> = { ...prev };
  for (const o of decision.outcomes) {
    const rec = decision.records[o.name]!;
    out[o.name] = o.result === 'failed' ? rec : { ...rec, behindSince: prev[o.name]?.behindSince ?? null };
  }
  return out;
}

/**
 * A run that decided but ends without committing (build failure, rollback): its pins were not
 * kept, so neither were its lags. The outcomes, breach reasons and records say the committed
 * lag (one number in the output, the result, status and the metrics), and the output says so.
 */
export function settleUncommitted(ctx: RunContext): void {
  const decision = ctx.decision;
  if (decision === null || ctx.committed || ctx.dryRun) return;
  const planned = new Map(decision.outcomes.map((o) => [o.name, o.lagRebuilds]));
  oneLag(decision, ctx.config, ctx.prev.committed.pins, true);
  ctx.res.desyncs = decision.outcomes;
  ctx.next.desyncs = uncommittedRecords(ctx.prev.desyncs, decision);
  for (const o of decision.outcomes) {
    if (planned.get(o.name) === o.lagRebuilds) continue;
    const max = ctx.config.desyncs[o.name]?.maxLagRebuilds;
    ctx.log.info(`pin        ${o.name}: not committed (the run failed): stays at lag ${o.lagRebuilds}/${max ?? '∞'}`, { stage: 'decide', desync: o.name, lag: o.lagRebuilds });
  }
}

/** A hold-back or bisect that blames nobody: the run goes on with the first decision (its outcomes, records; fail() settles the lags). */
export function keepFirstDecision(ctx: RunContext, first: Decision): void {
  ctx.decision = first;
  ctx.res.desyncs = first.outcomes;
  ctx.next.desyncs = uncommittedRecords(ctx.prev.desyncs, first);
}
