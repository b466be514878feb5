// Step 10: record the run — counters and the last run in state.json, the run in the bounded history.
import type { MachineState } from '../../state/model.js';
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
    ...(await store.appendHistory({ ...summary, exitCode: res.exitCode, candidate: res.candidate, desyncs: res.desyncs, evaluations: res.evaluations })),
  );
  failpoint('after-history');
  if (opts.removeJournal === false) return;
  await store.removeJournal();
  failpoint('after-journal-removed');
}
