// Step 2: a run that died (kill -9, power loss) left a journal. Restore the committed pin set,
// roll back a system that was activated but never confirmed healthy (or finish making a
// committed one the boot default), kill what it left running, drop its candidate set, and
// record it as an interrupted run — exactly once. A crash is not a verdict: nothing is rejected.
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Source } from '../source/source.js';
import type { Journal } from '../state/model.js';
import type { StateStore } from '../state/store.js';
import type { SystemSide } from '../system/system.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { killStaleGroup } from '../util/proc.js';
import { restoreSet } from './stages/restore.js';
import type { LockOwner } from '../state/lock.js';

export interface RecoverOptions {
  dryRun?: boolean;
  /** The owner of a stale lock this run took over: a run that died holding the lock. */
  deadHolder?: LockOwner | null;
  /** Id for a dead run whose own id is unknown (corrupt journal, old lock format). */
  newId?: () => string;
  /** Rolls back (or finishes) an activation the dead run left unconfirmed (or uncommitted). */
  system?: SystemSide;
  systemTimeoutMs?: number;
}

/**
 * Returns the id of the recovered run, or null when the last run ended cleanly. A dead run is
 * recorded exactly once: not when it got as far as recording itself (killed inside its record
 * step, or between removing its journal and releasing the lock), and also when it died before
 * writing its journal (the lock names it).
 */
export async function recoverInterruptedRun(store: StateStore, source: Source, log: Logger, now: () => Date, opts: RecoverOptions = {}): Promise<string | null> {
  const { value: journal, problems } = await store.readJournal({ repair: !opts.dryRun });
  for (const p of problems) log.warn(`journal ${p.file} was ${p.message}${p.movedTo ? `; moved aside to ${p.movedTo}` : ''}`);
  const holder = opts.deadHolder && !opts.deadHolder.command.includes('--dry-run') ? opts.deadHolder : null;
  if (journal === null && problems.length === 0 && holder?.runId === undefined) {
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
  await rm(join(store.dir, 'build'), { recursive: true, force: true });
  const systemNote = await settleActivation(store, journal, committed, log, opts);

  // Which dead runs to record: the journal's, and the lock holder's when it is another one.
  const dead: Array<{ id: string; at: string; message: string }> = [];
  if (journal !== null) {
    dead.push({ id: journal.runId, at: journal.startedAt, message: `interrupted: the run (pid ${journal.pid}) died during stage ${journal.stage}; the committed pin set was kept${systemNote}` });
  } else if (problems.length > 0) {
    dead.push({ id: holder?.runId ?? (opts.newId ?? (() => `interrupted-${now().getTime()}`))(), at: holder?.startedAt ?? now().toISOString(), message: 'interrupted: a corrupt journal was found; the committed pin set was kept' });
  }
  if (holder?.runId !== undefined && !dead.some((d) => d.id === holder.runId)) {
    dead.push({ id: holder.runId, at: holder.startedAt, message: `interrupted: the run (pid ${holder.pid}) died holding the lock before it wrote its journal; the committed pin set was kept` });
  }
  const history = await store.readHistory({ repair: true });
  const s = state.value;
  const recovered: string[] = [];
  for (const d of dead) {
    const inState = s.runs.last?.id === d.id;
    const inHistory = history.value.runs.some((r) => r.id === d.id);
    if (inState || inHistory) {
      // It recorded itself before dying: complete the record, never count it twice.
      if (inState && !inHistory) {
        const last = s.runs.last!;
        await store.appendHistory({ ...last, exitCode: last.result === 'success' ? 0 : 1, candidate: null, desyncs: [], evaluations: 0 });
      }
      log.info(`recovery   run ${d.id} had already recorded itself before it died; not counted again`, { runId: d.id });
      continue;
    }
    const at = Number.isNaN(Date.parse(d.at)) ? now().toISOString() : d.at;
    const summary = {
      id: d.id,
      at,
      finishedAt: now().toISOString(),
      result: 'failure' as const,
      durationSeconds: Math.max(0, (now().getTime() - Date.parse(at)) / 1000),
      stages: {},
      error: d.message,
    };
    s.runs.total.failure += 1;
    s.runs.last = summary;
    await store.writeState(s);
    await store.appendHistory({ ...summary, exitCode: 1, candidate: null, desyncs: [], evaluations: 0 });
    log.warn(`recovered from an interrupted run ${d.id}: ${d.message}`);
    recovered.push(d.id);
  }
  if (journal !== null || problems.length > 0) await store.removeJournal();
  return recovered[0] ?? dead[0]?.id ?? null;
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
  const afterCommit = journal.stage === 'commit';
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

/**
 * The system side of a dead run: an activation that was never committed (never confirmed
 * healthy) is rolled back — the previous toplevel activated again, unless it already runs —
 * and one that was committed is finished (profile generation + boot default). Returns a note
 * for the run's record.
 */
async function settleActivation(store: StateStore, journal: Journal | null, committed: string | null, log: Logger, opts: RecoverOptions): Promise<string> {
  const act = journal?.activation ?? null;
  if (act === null || !opts.system) return '';
  const o = { timeoutMs: opts.systemTimeoutMs ?? 3 * 3_600_000 };
  if (committed !== null && committed === journal?.candidateSetId) {
    try {
      const line = await opts.system.finalize(act.toplevel, o);
      return line ? `; ${line}` : '';
    } catch (err) {
      return `; making ${act.toplevel} the boot default failed again: ${errorMessage(err)}`;
    }
  }
  try {
    const line = await opts.system.rollback(act.previous, act.toplevel, o);
    log.warn(`rollback   the unconfirmed system ${act.toplevel} of the interrupted run: ${line}`);
    return `; the unconfirmed system ${act.toplevel} was rolled back: ${line}`;
  } catch (err) {
    log.error(`rollback of the interrupted activation failed: ${errorMessage(err)}`);
    return `; ROLLBACK FAILED: ${errorMessage(err)}`;
  }
}
