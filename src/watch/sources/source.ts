// One source of the exporter's model (node_exporter's collector, for files): it names the root
// it is watched under, reads once, re-reads what an event named, and reports its error. The
// model (../model.ts) only schedules the reads and publishes every snapshot together.
import { stat } from 'node:fs/promises';
import { errorMessage } from '../../util/errors.js';

export type SourceName = 'state' | 'profiles' | 'run' | 'pr' | 'flake';

/** What a read publishes: the new snapshot, and the source's error (null: readable). */
export interface Reading<S> {
  snapshot: S;
  error: string | null;
}

export interface Source<S> {
  readonly name: SourceName;
  /** The directory watched for this source, and which of its entries are its files. */
  readonly root: string;
  accept(name: string): boolean;
  /** Entries the watcher itself tracks (default: every accepted one). */
  track?(name: string): boolean;
  /** The snapshot before the first read. */
  readonly initial: S;
  /** A watcher event named `name` (an entry under root): re-read it at the next read. */
  onEvent?(name: string): void;
  /**
   * Reads what changed since the last read (everything when `full`). Nothing is published
   * until the returned function runs: the model may drop a read caught half-way through a run.
   */
  read(full: boolean): Promise<() => Reading<S>>;
  /** Before a scrape: whether what it published changed in a way no file event reports (a chmod, a link swapped within a debounce). */
  stale?(): Promise<boolean>;
}

/** Why `dir` cannot be read as a directory (null when it can); `missing` when it does not exist. */
export async function dirStatus(dir: string): Promise<{ error: string | null; missing: boolean }> {
  const st = await stat(dir).catch((e: unknown) => e as NodeJS.ErrnoException);
  if (st instanceof Error) return { error: `${dir}: ${errorMessage(st)}`, missing: st.code === 'ENOENT' };
  return { error: st.isDirectory() ? null : `${dir}: not a directory`, missing: false };
}

export async function dirProblem(dir: string): Promise<string | null> {
  return (await dirStatus(dir)).error;
}
