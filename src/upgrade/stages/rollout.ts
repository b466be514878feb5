// Step 9d (before the gate): with `rollout`, ask Prometheus whether this host may adopt the
// candidate — held (nothing changes, exit 0), rejected by another host, or go on.
import { createPrometheusClient, isTransientPrometheusError, type PrometheusClient } from '../../prometheus/client.js';
import { interpretAnswer, rolloutQuery } from '../../rollout/fleet.js';
import type { HoldReason, MachineState } from '../../state/model.js';
import type { Candidate } from '../../nix/adapter.js';
import { DesyncError, errorMessage } from '../../util/errors.js';
import type { RunContext } from '../context.js';
import { abandonCandidateSet } from './restore.js';

export async function rolloutStage(ctx: RunContext, client?: PrometheusClient): Promise<void> {
  const r = ctx.config.rollout;
  if (r === null) return;
  const c = ctx.candidate!;
  const { log, next } = ctx;
  // The host already runs this revision (adopted earlier): nothing to wait for, nothing to reject.
  if (ctx.prev.rollout.adopted?.revision === c.revision) {
    next.rollout.held = null;
    log.info(`rollout    ring ${r.ring}: ${c.revision} is already adopted here`, { stage: 'rollout', ring: r.ring });
    return;
  }
  const prom = client ?? createPrometheusClient(r.prometheus);
  const query = rolloutQuery(r, c.revision);
  let samples;
  try {
    samples = await prom.queryVector(query);
  } catch (err) {
    if (!isTransientPrometheusError(err)) throw err;
    // Ring 0 waits for nobody; a later ring holds unless told to go on without the fleet's word.
    if (r.ring > 0 && r.onUnreachable === 'hold') throw held('unreachable', `Prometheus cannot answer (${errorMessage(err)}): waiting for ring ${r.ring - 1}`, err);
    log.warn(`rollout    ring ${r.ring}: Prometheus cannot answer (${errorMessage(err)}); going on without the fleet's word (${r.ring === 0 ? 'ring 0' : 'onUnreachable "proceed"'})`, { stage: 'rollout', ring: r.ring });
    next.rollout.held = null;
    return;
  }
  let verdict = interpretAnswer(r, c.revision, samples);
  if (verdict.kind === 'rejected') {
    if (!ctx.retry) {
      throw new DesyncError('E_REJECTED', `${verdict.message}; it is skipped here while Prometheus shows that rejection. ` +
        'Once its cause is fixed, `nixos-desync upgrade --retry` tries it anyway', { details: { rejectedBy: verdict.rejectedBy } });
    }
    log.warn(`rollout    ${verdict.message}; trying it anyway (--retry)`, { stage: 'rollout', rejectedBy: verdict.rejectedBy });
    verdict = interpretAnswer(r, c.revision, samples.filter((s) => s.labels.rollout !== 'rejected'));
  }
  if (verdict.kind === 'hold') throw held(verdict.reason, verdict.message);
  next.rollout.held = null;
  log.info(`rollout    ${verdict.message}`, { stage: 'rollout', ring: r.ring });
}

function held(reason: HoldReason, message: string, cause?: unknown): DesyncError {
  return new DesyncError('E_HELD', message, { cause, details: { reason } });
}

/** A held run: the candidate set goes, nothing else changes; the run is recorded as `held`, exit 0. */
export async function holdRun(ctx: RunContext, err: DesyncError): Promise<void> {
  const { res, next, log } = ctx;
  const reason = err.details.reason as HoldReason;
  if (!ctx.dryRun) await abandonCandidateSet(ctx);
  res.result = 'held';
  res.exitCode = 0;
  res.held = { reason, message: err.message };
  res.error = { code: 'E_HELD', message: `held (${reason}): ${err.message}` };
  const since = ctx.prev.rollout.held?.since ?? res.startedAt;
  next.rollout.held = { reason, since, revision: ctx.candidate?.revision ?? '?', message: err.message.slice(0, 1000) };
  log.warn(`rollout    held (${reason}): ${err.message}; nothing was changed`, { stage: 'rollout', reason, since });
}

/** The soak clock at a commit: kept while the committed revision stays the same. */
export function adoptedAt(prev: MachineState, candidate: Candidate, at: string): MachineState['rollout']['adopted'] {
  return prev.rollout.adopted?.revision === candidate.revision ? prev.rollout.adopted : { revision: candidate.revision, since: at };
}
