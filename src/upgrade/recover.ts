// Step 2: a run that died (kill -9, power loss) left a journal. Restore the committed pin set,
// kill what it left running, drop its candidate set, and record it as an interrupted run.
import type { StateStore } from '../state/store.js';
import type { Logger } from '../util/log.js';
import { killStaleGroup } from '../util/proc.js';
import { rm } from 'node:fs/promises';

/** Returns the id of the recovered run, or null when the last run ended cleanly. */
export async function recoverInterruptedRun(store: StateStore, log: Logger, now: () => Date, opts: { dryRun?: boolean } = {}): Promise<string | null> {
  const { value: journal, problems } = await store.readJournal();
  for (const p of problems) log.warn(`journal ${p.file} was ${p.message}; moved aside to ${p.movedTo}`);
  if (journal === null && problems.length === 0) {
    // No run in flight: still remove candidate sets a crash before the first journal write left.
    if (!opts.dryRun) await dropUncommittedSets(store);
    return null;
  }
  if (opts.dryRun) {
    log.warn('an interrupted run was found; the next upgrade (not a dry run) will recover it');
    return null;
  }
  const state = await store.readState({ repair: true });
  const committed = state.value.committed.setId ?? journal?.previousSetId ?? null;
  if (journal?.child && killStaleGroup(journal.child.pgid, journal.child.startTime)) {
    log.warn(`killed process group ${journal.child.pgid} left running by the interrupted run`);
  }
  const target = await store.pinsTarget();
  if (target !== committed) {
    if (journal?.candidateSetId) await restorePins(store, committed, journal.candidateSetId);
    else if (committed !== null) await store.pointPinsAt(committed);
  }
  await dropUncommittedSets(store, committed);
  const runId = journal?.runId ?? 'unknown';
  const at = journal?.startedAt ?? now().toISOString();
  const message = journal
    ? `interrupted: the run (pid ${journal.pid}) died during stage ${journal.stage}; the committed pin set was kept`
    : 'interrupted: a corrupt journal was found; the committed pin set was kept';
  const s = state.value;
  s.runs.total.failure += 1;
  const summary = {
    id: runId,
    at,
    finishedAt: now().toISOString(),
    result: 'failure' as const,
    durationSeconds: Math.max(0, (now().getTime() - Date.parse(at)) / 1000),
    stages: {},
    error: message,
  };
  s.runs.last = summary;
  await store.writeState(s);
  await store.appendHistory({ ...summary, exitCode: 1, candidate: null, desyncs: [], evaluations: 0 });
  await store.removeJournal();
  log.warn(`recovered from an interrupted run ${runId}: ${message}`);
  return runId;
}

async function dropUncommittedSets(store: StateStore, committed?: string | null): Promise<void> {
  const keep = committed === undefined ? (await store.readState({ repair: false })).value.committed.setId : committed;
  const target = await store.pinsTarget().catch(() => null);
  for (const id of await store.listSets()) {
    if (id !== keep && id !== target) await store.removeSet(id);
  }
}

/** Points `pins` back at the committed set (or removes it) and deletes the candidate set. */
export async function restorePins(store: StateStore, committedSetId: string | null, candidateSetId: string): Promise<void> {
  if (committedSetId !== null) {
    if ((await store.pinsTarget().catch(() => null)) !== committedSetId) await store.pointPinsAt(committedSetId);
  } else if ((await store.pinsTarget().catch(() => null)) === candidateSetId) {
    await rm(store.paths.pins, { force: true });
  }
  if (candidateSetId !== committedSetId) await store.removeSet(candidateSetId);
}

