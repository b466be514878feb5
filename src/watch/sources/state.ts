// The state source: <stateDir>'s state.json, history.json and journal.json, read only from a
// trusted directory (state-trust.ts, the loop's own rule), with the last good state kept.
import { stat } from 'node:fs/promises';
import type { Config } from '../../config/schema.js';
import { emptyState, type Journal, type MachineState, type RunRecord } from '../../state/model.js';
import { createStateStore, type StateProblem } from '../../state/store.js';
import { stateTrustProblem, type LockHolder } from '../state-trust.js';
import { dirStatus, type Source } from './source.js';

export interface StateSnapshot {
  state: MachineState;
  /** state.json missing is fine (fresh host); corrupt/unreadable is a problem. */
  stateProblem: StateProblem | null;
  stateMissing: boolean;
  recentRuns: RunRecord[];
  historyProblem: StateProblem | null;
  journal: Journal | null;
  journalProblem: StateProblem | null;
  corruptFiles: string[];
  /** The state directory itself cannot be read. */
  dirError: string | null;
  /**
   * Why the state directory cannot be trusted (a symlink, a foreign owner, group/world-
   * writable: the loop refuses to run); nothing read from it is exported then.
   */
  untrusted: string | null;
  /**
   * The last state read from a valid state.json in a trusted directory: while state.json is
   * corrupt or the directory untrusted, the breaches it recorded stay visible.
   */
  lastGood: MachineState | null;
  /** The live upgrade run holding the lock, if any (its files are applied once it ends). */
  runHolder: LockHolder | null;
}

/** What the source reads; the model adds who holds the run lock. */
export type StateReading = Omit<StateSnapshot, 'runHolder'>;

const STATE_NAMES = new Set(['state.json', 'history.json', 'journal.json', 'pins', 'lock', 'sets']);

export interface StateSource extends Source<StateReading> {
  /** Whether the directory's trust changed since the last published read (a chmod sends no event). */
  stale(): Promise<boolean>;
}

export function createStateSource(config: Config, recentLimit: number): StateSource {
  const store = createStateStore(config.stateDir);
  // A state directory that vanished after this exporter saw it is a problem, not a fresh host.
  let stateDirSeen = false;
  let published: StateReading = {
    state: emptyState(), stateProblem: null, stateMissing: true, recentRuns: [], historyProblem: null,
    journal: null, journalProblem: null, corruptFiles: [], dirError: 'not read yet', untrusted: null, lastGood: null,
  };
  const publish = (next: StateReading, error: string | null) => () => {
    published = next;
    return { snapshot: next, error };
  };

  async function read(): Promise<() => { snapshot: StateReading; error: string | null }> {
    // A state directory that does not exist yet is a host where the loop never ran (monitor
    // mode): nothing to report, nothing failing. One that is unreadable or a file is a problem.
    const dir = await dirStatus(config.stateDir);
    const dirError = dir.missing && !stateDirSeen ? null : dir.error;
    if (!dir.error) stateDirSeen = true;
    const blank = { state: emptyState(), stateProblem: null, stateMissing: true, recentRuns: [], historyProblem: null, journal: null, journalProblem: null, corruptFiles: [] };
    if (dir.error) return () => publish({ ...blank, dirError, untrusted: null, lastGood: published.lastGood }, dirError)();
    const untrusted = await stateTrustProblem(config.stateDir);
    if (untrusted) return () => publish({ ...blank, dirError: null, untrusted, lastGood: published.lastGood }, untrusted)();
    const [st, hist, journal, corrupt] = await Promise.all([
      store.readState({ repair: false }),
      store.readHistory({ repair: false }),
      store.readJournal({ repair: false }),
      store.corruptFiles(),
    ]);
    const stateMissing = st.problems.length === 0 && !(await stat(store.paths.state).then(() => true, () => false));
    return () => {
      const next: StateReading = {
        state: st.value,
        stateProblem: st.problems[0] ?? null,
        stateMissing,
        recentRuns: hist.value.runs.slice(-recentLimit).reverse(),
        historyProblem: hist.problems[0] ?? null,
        journal: journal.value,
        journalProblem: journal.problems[0] ?? null,
        corruptFiles: corrupt,
        dirError: null,
        untrusted: null,
        lastGood: st.problems.length === 0 && !stateMissing ? st.value : published.lastGood,
      };
      return publish(next, next.stateProblem?.message ?? next.historyProblem?.message ?? next.journalProblem?.message ?? null)();
    };
  }

  return {
    name: 'state',
    root: config.stateDir,
    accept: (n) => STATE_NAMES.has(n) || (n.includes('.corrupt-') && !n.startsWith('.')),
    initial: published,
    read,
    async stale() {
      // One lstat per trusted path; an unreadable directory is the read's business.
      if (published.dirError !== null) return false;
      return (await stateTrustProblem(config.stateDir)) !== published.untrusted;
    },
  };
}
