// What the exporter's model offers (the scrape, the HTTP app and the tests use it); the model
// itself is model.ts, its sources are sources/*.ts.
import type { Logger } from '../util/log.js';
import type { FlakeSnapshot } from './sources/flake.js';
import type { PrSnapshot } from './sources/pr.js';
import type { ProfilesReading } from './sources/profiles.js';
import type { RunReading } from './sources/run.js';
import type { SourceName } from './sources/source.js';
import type { StateSnapshot } from './sources/state.js';

/** The profiles and run sources together (both say whether an activation is pending: the later read wins). */
export type SystemSnapshot = ProfilesReading & RunReading;

export interface HostModel {
  readonly state: StateSnapshot;
  readonly system: SystemSnapshot;
  readonly pr: PrSnapshot | null;
  readonly flake: FlakeSnapshot | null;
  /** Resolves once every source was read once (watchers may still be starting). */
  ready: Promise<void>;
  /** Resolves once every watcher is watching (tests). */
  watching: Promise<void>;
  /** Re-reads every source now (what the safety net and watcher errors do). */
  rescanAll(reason: string): Promise<void>;
  /** Resolves when no refresh is pending or running (tests). */
  settled(): Promise<void>;
  /**
   * Re-checks, before a scrape, what no file event reports: the state directory's trust (a
   * chmod or chown of the watched directory delivers none), a run that died holding the lock
   * (kill -9), the running system's link (swapped since the last debounced read). A change is
   * applied before it resolves.
   */
  recheck(): Promise<void>;
  readonly stats: { refreshes: Record<SourceName, number>; rescans: number };
  close(): Promise<void>;
}

export interface HostModelOptions {
  logger: Logger;
  /** Quiet time before a burst of events is applied. */
  debounceMs?: number;
  /** A continuous burst is still applied at least this often. */
  maxWaitMs?: number;
  /** Safety-net full re-read interval (0 disables). */
  rescanIntervalMs?: number;
  retryMs?: number;
  recentRuns?: number;
  storeDir?: string;
  /** While a run holds the lock, how often to check that its process is still alive. */
  lockPollMs?: number;
}
