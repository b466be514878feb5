// Step 8b with `health.bisect`: nothing claims the failures of the health gate, so the culprit
// is searched among the desyncs that moved by halving (attribution.ts): each trial holds back a
// half of the suspects and is one more activation of the live host, always from the verified
// system. Assumes one culprit; bounded. Found → the host is upgraded with it held back;
// not found, or holding it back does not help → the rollback and rejection of step 8.
import type { HealthFailure } from '../../system/system.js';
import { isDesyncError } from '../../util/errors.js';
import { bisectResult, nextTrial, recordTrial, startBisect } from '../attribution.js';
import type { BisectOutcome, HoldBackOutcome, RunContext } from '../context.js';
import { keepFirstDecision } from './decide.js';
import { backToVerified, describeFailures, tryWithHeld, type TryResult } from './trial.js';

/** At most this many halving trials (32 suspects), plus one to confirm the culprit: bounded live activations. */
export const BISECT_MAX_TRIALS = 5;

export async function bisectStage(ctx: RunContext, err: unknown, failures: HealthFailure[], moved: ReadonlySet<string>): Promise<void> {
  const { log } = ctx;
  // Only a desync with a pin can be held back.
  const suspects = [...moved].filter((n) => ctx.prev.committed.pins[n] !== undefined).sort();
  if (suspects.length === 0) {
    log.info('bisect     not applicable (no desync that moved has a pin to stay on): the candidate is rolled back whole', { stage: 'health', result: 'rejected' });
    throw err;
  }
  const bisect: BisectOutcome = { suspects, trials: [], culprit: null };
  const outcome: HoldBackOutcome = { culprits: {}, activations: 1, systemBuilds: 1, healthy: false, bisect };
  ctx.res.holdBack = outcome;
  log.warn(`bisect     nothing claims the failure (${describeFailures(failures)}): searching the culprit among the ${suspects.length} desync(s) that moved ` +
    `(${suspects.join(', ')}) by halving; each trial is one more activation`, { stage: 'health', suspects });
  const first = ctx.decision!;
  const base = ctx.gate;
  const evidence = (n: string): string => `health (bisect): the health gate failed (${describeFailures(failures)}) until ${n} was held back`;
  // The system running now: the unhealthy candidate, then each trial's.
  let running: TryResult = { healthy: false, err, failures };
  let runningHeld: string[] = [];
  const blameNobody = (e: unknown): never => {
    // A breach of a held desync at its budget is recorded as for a failed gate; otherwise nobody is blamed.
    if (!isDesyncError(e, 'E_BREACH')) keepFirstDecision(ctx, first);
    throw e;
  };
  const trial = async (held: string[]): Promise<TryResult> => {
    await backToVerified(ctx, running.healthy ? err : running.err);
    const r = await tryWithHeld(ctx, base, new Set(held), evidence, outcome).catch(blameNobody);
    bisect.trials.push({ held, healthy: r.healthy, failures: r.healthy ? [] : r.failures.map((f) => `${f.kind} ${f.name}`) });
    [running, runningHeld] = [r, held];
    return r;
  };
  let s = startBisect(suspects);
  for (let held = nextTrial(s, BISECT_MAX_TRIALS); held !== null; held = nextTrial(s, BISECT_MAX_TRIALS)) {
    const r = await trial(held);
    s = recordTrial(s, held, r.healthy);
    log.info(`bisect     trial ${s.trials.length}: holding back ${held.join(', ')} → ${r.healthy ? 'healthy' : `unhealthy (${describeFailures(r.failures)})`}: ` +
      `the culprit is among ${s.suspects.join(', ')}`, { stage: 'health', trial: s.trials.length, held, healthy: r.healthy });
  }
  const { culprit } = bisectResult(s);
  if (culprit === null) {
    log.info(`bisect     no single culprit after ${s.trials.length} trial(s) (at most ${BISECT_MAX_TRIALS}): the candidate is rolled back whole`, { stage: 'health', result: 'rejected' });
    return blameNobody(running.healthy ? err : running.err);
  }
  // The host is upgraded with exactly the culprit held back: unless that is what runs now, one more activation.
  if (!(running.healthy && runningHeld.length === 1 && runningHeld[0] === culprit)) {
    log.info(`bisect     culprit ${culprit}: activating the candidate with ${culprit} alone held back`, { stage: 'health', desync: culprit });
    const r = await trial([culprit]);
    if (!r.healthy) {
      log.info(`bisect     still unhealthy with ${culprit} held back (${describeFailures(r.failures)}): not one desync's failure; the candidate is rolled back whole`, { stage: 'health', result: 'rejected' });
      return blameNobody(r.err);
    }
  }
  bisect.culprit = culprit;
  outcome.culprits = { [culprit]: failures };
  outcome.healthy = true;
  log.warn(`holdback   ${culprit}: held back at its pin — found by bisect (${bisect.trials.length} trial(s), ${outcome.activations} activations in all): ${describeFailures(failures)}`,
    { stage: 'health', desync: culprit, result: 'held_back', trials: bisect.trials.length });
  log.info(`holdback   healthy with ${culprit} held back: the host is upgraded`, { stage: 'health', result: 'passed' });
}
