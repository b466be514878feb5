// Step 2: a run that died (kill -9, power loss) left a journal. Restore the committed pin set,
// kill what it left running, drop its candidate set, and record it as an interrupted run.
import type { StateStore } from '../state/store.js';
import type { Source } from '../source/source.js';
import type { Logger } from '../util/log.js';
import { killStaleGroup } from '../util/proc.js';
import { stat } from 'node:fs/promises';
import type { Journal } from '../state/model.js';
import { restoreSet } from './stages/restore.js';

/** Returns the id of the recovered run, or null when the last run ended cleanly. */
export async function recoverInterruptedRun(store: StateStore, source: Source, log: Logger, now: () => Date, opts: { dryRun?: boolean } = {}): Promise<string | null> {
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
  const committed = await committedSetAfterCrash(store, state.problems.length === 0, state.value.committed.setId, journal);
  if (committed !== state.value.committed.setId) {
    // state.json was corrupt or missing: the committed pins are those of the committed set's files.
    state.value.committed = committed === null ? { setId: null, at: null, pins: {} } : { setId: committed, at: null, pins: await store.readSetPins(committed) };
  }
  if (journal?.child && killStaleGroup(journal.child.pgid, journal.child.startTime)) {
    log.warn(`killed process group ${journal.child.pgid} left running by the interrupted run`);
  }
  // The source shows the committed set again (idempotent), the dead run's candidate set goes.
  await restoreSet(store, source, committed === null ? null : { id: committed, pins: state.value.committed.pins }, journal?.candidateSetId ?? null, 60_000);
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

/**
 * Which set is committed after a crash. A valid state.json says so. Without one (corrupt, or
 * never written before the first commit) the pins symlink may show the dead run's candidate,
 * so the journal decides: the set committed before the run, unless the run died after its own
 * commit point (then its candidate is the committed set).
 */
async function committedSetAfterCrash(store: StateStore, stateValid: boolean, fromState: string | null, journal: Journal | null): Promise<string | null> {
  const stateExists = await stat(store.paths.state).then(() => true, () => false);
  if (stateValid && stateExists) return fromState;
  if (!journal) return fromState;
  const sets = await store.listSets();
  const afterCommit = journal.stage === 'commit' || journal.stage === 'activate';
  if (afterCommit && journal.candidateSetId && sets.includes(journal.candidateSetId)) return journal.candidateSetId;
  if (journal.previousSetId && sets.includes(journal.previousSetId)) return journal.previousSetId;
  return journal.previousSetId === null ? null : fromState;
}

async function dropUncommittedSets(store: StateStore, committed?: string | null): Promise<void> {
  const keep = committed === undefined ? (await store.readState({ repair: false })).value.committed.setId : committed;
  const target = await store.pinsTarget().catch(() => null);
  for (const id of await store.listSets()) {
    if (id !== keep && id !== target) await store.removeSet(id);
  }
}
