// Step 10: record the run — counters and the last run in state.json, the run in the bounded history.
import type { MachineState, RunRecord } from '../../state/model.js';
import type { StateStore } from '../../state/store.js';
import { failpoint } from '../../util/failpoint.js';
import type { UpgradeResult } from '../context.js';

export async function recordRun(store: StateStore, next: MachineState, res: UpgradeResult, opts: { removeJournal?: boolean } = {}): Promise<void> {
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
    ...(await store.appendHistory({ ...summary, exitCode: res.exitCode, candidate: res.candidate, desyncs: res.desyncs, evaluations: res.evaluations, ...holdBackRecord(res) })),
  );
  failpoint('after-history');
  if (opts.removeJournal === false) return;
  await store.removeJournal();
  failpoint('after-journal-removed');
}

/** The run record's account of step 8b (the result's, with the culprits' names only). */
function holdBackRecord(res: UpgradeResult): Pick<RunRecord, 'holdBack'> {
  const h = res.holdBack;
  if (h === undefined) return {};
  return { holdBack: { culprits: Object.keys(h.culprits).sort(), activations: h.activations, systemBuilds: h.systemBuilds, healthy: h.healthy, ...(h.bisect ? { bisect: h.bisect } : {}) } };
}
