// Step 2: a run that died (kill -9, power loss) left a journal. Restore the committed pin set,
// roll back a system that was activated but never confirmed healthy (or finish making a
// committed one the boot default), kill what it left running, drop its candidate set, and
// record it as an interrupted run — exactly once. A crash is not a verdict: nothing is rejected.
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Source } from '../source/source.js';
import type { Journal, RunResult } from '../state/model.js';
import type { StateStore } from '../state/store.js';
import type { SystemSide } from '../system/system.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { bootId, killStaleGroup } from '../util/proc.js';
import { restoreSet } from './stages/restore.js';
import { applyVerdict, rollbackSystem, type Verdict } from './stages/rollback.js';
import { finalizeSystem } from './stages/commit.js';
import type { LockOwner } from '../state/lock.js';
import type { Shield } from '../util/shield.js';

export interface RecoverOptions {
  dryRun?: boolean;
  /** The owner of a stale lock this run took over: a run that died holding the lock. */
  deadHolder?: LockOwner | null;
  /** Id for a dead run whose own id is unknown (corrupt journal, old lock format). */
  newId?: () => string;
  /** Rolls back (or finishes) an activation the dead run left unconfirmed (or uncommitted). */
  system?: SystemSide;
  systemTimeoutMs?: number;
  /** Held during the rollback (a second SIGTERM of the CLI waits for it). */
  shield?: Shield;
}

/**
 * Returns the id of the recovered run, or null when the last run ended cleanly. A dead run is
 * recorded exactly once: not when it got as far as recording itself (killed inside its record
 * step, or between removing its journal and releasing the lock), and also when it died before
 * writing its journal (the lock names it).
 */
export interface Recovered {
  /** The recovered run's id, or null when the last run ended cleanly. */
  id: string | null;
  /** Why the system is still unverified: the dead run's rollback, or its committed system's boot entry, failed again (its journal stays for the next try). */
  unverified: string | null;
}

export async function recoverInterruptedRun(store: StateStore, source: Source, log: Logger, now: () => Date, opts: RecoverOptions = {}): Promise<Recovered> {
  const { value: journal, problems } = await store.readJournal({ repair: !opts.dryRun });
  for (const p of problems) log.warn(`journal ${p.file} was ${p.message}${p.movedTo ? `; moved aside to ${p.movedTo}` : ''}`);
  const holder = opts.deadHolder && !opts.deadHolder.command.includes('--dry-run') ? opts.deadHolder : null;
  if (journal === null && problems.length === 0 && holder?.runId === undefined) {
    // No run in flight: still remove candidate sets a crash before the first journal write left.
    if (!opts.dryRun) await dropUncommittedSets(store);
    return { id: null, unverified: null };
  }
  if (opts.dryRun) {
    log.warn('an interrupted run was found; the next upgrade (not a dry run) will recover it');
    return { id: null, unverified: null };
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
  // The system first, while the dead run's set still roots the rollback target.
  const settled = await settleActivation(journal, committed, log, opts);
  const committedSet = committed === null ? null : { id: committed, pins: state.value.committed.pins };
  const candidateId = journal?.candidateSetId ?? null;
  if (settled.confirmed === false) {
    // The pins show the committed set again; the dead run's set keeps the rollback target rooted for the next try.
    await source.restore(committedSet, candidateId, { timeoutMs: 60_000 });
    await dropUncommittedSets(store, committed, candidateId);
  } else {
    // The source shows the committed set again (idempotent), the dead run's candidate set goes.
    await restoreSet(store, source, committedSet, candidateId, 60_000);
    await dropUncommittedSets(store, committed);
  }
  await rm(join(store.dir, 'build'), { recursive: true, force: true });
  // A run that died past its commit point: what step 9 leaves to the source (flake: the git commit of flake.lock).
  if (journal !== null && committedSet !== null && committedSet.id === journal.candidateSetId && settled.unfinished === undefined) {
    await source.commit(committedSet, { timeoutMs: 60_000 }).catch((err: unknown) => log.warn(`commit     ${errorMessage(err)}`));
  }

  // Which dead runs to record: the journal's, and the lock holder's when it is another one.
  const dead: Array<{ id: string; at: string; message: string; result: RunResult; verdict: Verdict | null }> = [];
  if (journal !== null) {
    dead.push(deadRunOf(journal, settled));
  } else if (problems.length > 0) {
    dead.push({ id: holder?.runId ?? (opts.newId ?? (() => `interrupted-${now().getTime()}`))(), at: holder?.startedAt ?? now().toISOString(), message: 'interrupted: a corrupt journal was found; the committed pin set was kept', result: 'failure', verdict: null });
  }
  if (holder?.runId !== undefined && !dead.some((d) => d.id === holder.runId)) {
    dead.push({ id: holder.runId, at: holder.startedAt, message: `interrupted: the run (pid ${holder.pid}) died holding the lock before it wrote its journal; the committed pin set was kept`, result: 'failure', verdict: null });
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
      result: applyVerdict(s, d.verdict, { runId: d.id, confirmed: d.result !== 'rollback_failed' }),
      durationSeconds: Math.max(0, (now().getTime() - Date.parse(at)) / 1000),
      stages: {},
      error: d.message,
    };
    s.runs.total[summary.result] += 1;
    s.runs.last = summary;
    await store.writeState(s);
    await store.appendHistory({ ...summary, exitCode: 1, candidate: d.verdict?.candidate ?? null, desyncs: [], evaluations: 0 });
    log.warn(`recovered from an interrupted run ${d.id}: ${d.message}`);
    recovered.push(d.id);
  }
  // An activation whose rollback failed again stays in the journal: the next recovery tries again (the run is recorded once).
  if ((journal !== null || problems.length > 0) && settled.confirmed !== false && settled.unfinished === undefined) await store.removeJournal();
  const id = recovered[0] ?? dead[0]?.id ?? null;
  const unverified = settled.confirmed === false ? `an interrupted run's unconfirmed system could not be rolled back (${settled.note.replace(/^; /, '')})` : settled.unfinished ?? null;
  return { id, unverified };
}

/** The dead run of `journal` as it is recorded: interrupted (no verdict), or its verdict with the rollback's outcome. */
function deadRunOf(journal: Journal, settled: Settled): { id: string; at: string; message: string; result: RunResult; verdict: Verdict | null } {
  const v = journal.verdict;
  // A verdict without an activation left: the run's own rollback was confirmed before it died.
  const confirmed = settled.confirmed ?? true;
  const result: RunResult = !confirmed ? 'rollback_failed' : v?.reason ? 'rolled_back' : 'failure';
  const why = v?.reason ? ` after its ${v.reason === 'health' ? 'health gate' : 'activation'} failed (${v.error.split('\n')[0]!.slice(0, 300)})` : '';
  return {
    id: journal.runId,
    at: journal.startedAt,
    message: `interrupted: the run (pid ${journal.pid}) died during stage ${journal.stage}${why}; the committed pin set was kept${settled.note}`,
    result,
    verdict: v,
  };
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

async function dropUncommittedSets(store: StateStore, committed?: string | null, alsoKeep: string | null = null): Promise<void> {
  const keep = committed === undefined ? (await store.readState({ repair: false })).value.committed.setId : committed;
  const target = await store.pinsTarget().catch(() => null);
  for (const id of await store.listSets()) {
    if (id !== keep && id !== target && id !== alsoKeep) await store.removeSet(id);
  }
}

interface Settled {
  /** A note for the run's record. */
  note: string;
  /** true: rolled back and confirmed (or nothing of the candidate runs any more); false: it failed; null: no rollback was due. */
  confirmed: boolean | null;
  /** Why a committed system is still not the boot default (its journal stays for the next try). */
  unfinished?: string;
}

/**
 * The system side of a dead run: an activation that was never committed (never confirmed
 * healthy) is rolled back — the previous toplevel activated again, also when the link already
 * names it (a killed activation may have stopped units), and confirmed — and one that was
 * committed is finished (profile generation + boot default). No rollback is due when the
 * candidate no longer runs because something else replaced it: a reboot since (the boot default
 * is never an unconfirmed candidate) or a system switched outside the loop.
 */
async function settleActivation(journal: Journal | null, committed: string | null, log: Logger, opts: RecoverOptions): Promise<Settled> {
  const act = journal?.activation ?? null;
  if (act === null || !opts.system) return { note: '', confirmed: null };
  const o = { timeoutMs: opts.systemTimeoutMs ?? 3 * 3_600_000, shield: opts.shield };
  if (committed !== null && committed === journal?.candidateSetId) {
    try {
      const line = await finalizeSystem(opts.system, act.toplevel, o);
      return { note: line ? `; ${line}` : '', confirmed: null };
    } catch (err) {
      // Healthy and committed, but not verified without its boot entry: the journal stays for the next try.
      const why = `run ${journal.runId} committed ${act.toplevel}, but making it the boot default failed again: ${errorMessage(err)}`;
      log.error(why);
      return { note: `; ${why}`, confirmed: null, unfinished: why };
    }
  }
  const running = await opts.system.current();
  const rebooted = act.bootId !== undefined && bootId() !== undefined && act.bootId !== bootId();
  if (running !== null && running !== act.toplevel && (rebooted || running !== act.previous)) {
    const how = rebooted ? 'the host rebooted since' : 'it was replaced outside the loop';
    log.warn(`rollback   the unconfirmed system ${act.toplevel} of the interrupted run no longer runs (${how}): ${running} runs`);
    return { note: `; the unconfirmed system ${act.toplevel} no longer runs (${how}): ${running} runs`, confirmed: true };
  }
  const r = await rollbackSystem(opts.system, act.previous, act.toplevel, o);
  if (r.confirmed) {
    log.warn(`rollback   the unconfirmed system ${act.toplevel} of the interrupted run: ${r.line}`);
    return { note: `; the unconfirmed system ${act.toplevel} was rolled back: ${r.line}`, confirmed: true };
  }
  log.error(`rollback of the interrupted activation failed: ${r.line}`);
  return { note: `; ROLLBACK FAILED: ${r.line}`, confirmed: false };
}
