// The shared context of one run: what every stage reads (config, parts, the state before the
// run) and writes (the result, the next state, what the earlier stages found).
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { CallOptions, Candidate, NixAdapter } from '../nix/adapter.js';
import type { Source } from '../source/source.js';
import type { StateProblem, StateStore } from '../state/store.js';
import type { Journal, MachineState, RunDesyncOutcome, RunResult as RunOutcome } from '../state/model.js';
import type { BuiltSystem, HealthFailure, SystemSide } from '../system/system.js';
import type { HoldReason, RebootBlock, RollbackReason } from '../state/model.js';
import { DesyncError } from '../util/errors.js';
import type { Runner } from '../util/exec.js';
import { parseDuration } from '../util/duration.js';
import type { Logger } from '../util/log.js';
import type { Decision, GateOutcome } from './policy.js';

/** Stage names as recorded (journal, stage durations, the stage label of the metrics), in loop order. */
export const STAGES = ['fetch', 'candidate', 'rollout', 'gate', 'system_build', 'activate', 'health', 'rollback', 'commit'] as const;
export type StageName = (typeof STAGES)[number];

import type { Shield } from '../util/shield.js';
export interface UpgradeDeps {
  config: Config;
  nix: NixAdapter;
  run: Runner;
  store: StateStore;
  logger: Logger;
  /** What the system follows; defaults to the channel source built from `nix` and `store`. */
  source?: Source;
  /** The system side; defaults to NixOS built from `run`. */
  system?: SystemSide;
  now?: () => Date;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** Held during rollbacks: the CLI's second SIGTERM/SIGINT waits for them (cli/signals.ts). */
  shield?: Shield;
}

export interface UpgradeOptions {
  dryRun?: boolean;
  /** Also try a candidate that a rollback rejected (`upgrade --retry`). */
  retry?: boolean;
}

export interface UpgradeResult {
  exitCode: number;
  result: RunOutcome;
  dryRun: boolean;
  runId: string;
  startedAt: string;
  durationSeconds: number;
  stages: Partial<Record<StageName, number>>;
  candidate: { path: string; revision: string } | null;
  desyncs: RunDesyncOutcome[];
  evaluations: number;
  error: { code: string; message: string } | null;
  stateProblems: StateProblem[];
  recoveredRun: string | null;
  /** A run held by the rollout (result `held`): why. */
  held?: { reason: HoldReason; message: string };
  /** Step 8b ran (a runtime hold-back): the culprits, their evidence, the extra activation. */
  holdBack?: HoldBackOutcome;
  /** Step 9b: a reboot was required after the commit: whether the run reboots the host, else why not. */
  reboot?: { blocked: RebootBlock | null; message: string; rebooting: boolean; error?: string };
  /** The built system went the boot path (not activated live): why. */
  bootPath?: string;
}

/** What the run did at step 8b (runtime hold-back): the upgrade's output and `--json`. */
export interface HoldBackOutcome {
  /** Culprit → the failures attributed to it (unit/check name, reason, tail). */
  culprits: Record<string, HealthFailure[]>;
  /** Activations of the live host in this run (1 without a hold-back). */
  activations: number;
  /** System builds (each one Nix evaluation) in this run. */
  systemBuilds: number;
  /** The second gate's verdict. */
  healthy: boolean;
  /** `health.bisect` ran (nothing claimed the failures): each trial and the culprit it found. */
  bisect?: BisectOutcome;
}

/** The halving search of step 8b: which trials ran, what each showed, the culprit. */
export interface BisectOutcome {
  /** The desyncs that moved (the suspects at the start). */
  suspects: string[];
  /** In order: the desyncs held back, healthy or not, and the failures of an unhealthy one. */
  trials: { held: string[]; healthy: boolean; failures: string[] }[];
  /** The culprit found (null: none within the bound, or holding it back did not help). */
  culprit: string | null;
}

export interface RunContext {
  readonly config: Config;
  readonly nix: NixAdapter;
  readonly run: Runner;
  readonly store: StateStore;
  readonly log: Logger;
  readonly source: Source;
  readonly system: SystemSide;
  readonly env: NodeJS.ProcessEnv;
  readonly signal?: AbortSignal;
  readonly now: () => Date;
  readonly dryRun: boolean;
  readonly retry: boolean;
  readonly res: UpgradeResult;
  /** State as committed before this run. */
  readonly prev: MachineState;
  /** State this run records (desync records from the decision; the committed set after commit). */
  readonly next: MachineState;
  readonly journal: Journal;
  /** Found by the stages, in order. */
  candidate: Candidate | null;
  gate: GateOutcome[];
  decision: Decision | null;
  built: BuiltSystem | null;
  /** The toplevel running before activation (what a rollback activates again). */
  previous: string | null;
  /** Failed units before activation (they do not count in the health gate). */
  baseline: string[];
  /** True once `built` was activated (from then on a failure means rollback). */
  activated: boolean;
  /** True once state.json names this run's set as committed. */
  committed: boolean;
  /** True once the committed system is the profile's newest generation and the boot default (until then the journal stays for `recover`). */
  finalized: boolean;
  /** Why the built system goes the boot path (not activated live; its health gate runs at boot), or null. */
  bootPath: string | null;
  saveJournal(patch: Partial<Journal>): Promise<void>;
  /** Call options with the timeout `timeouts[key]`, the run's abort signal and child tracking. */
  call(key: keyof Config['timeouts']): CallOptions;
  /** The same without the run's abort signal: a rollback is never cancelled by SIGTERM/SIGINT, only by its own timeout. */
  uninterruptible(key: keyof Config['timeouts']): CallOptions;
}

export function makeRunId(now: Date): string {
  return now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z') + '-' + randomBytes(3).toString('hex');
}

export function timeoutMs(config: Config, key: keyof Config['timeouts']): number {
  return parseDuration(config.timeouts[key])!;
}

/** Runs one stage: journaled (crash recovery knows where the run died) and timed. */
export async function stage(ctx: RunContext, name: StageName, fn: (ctx: RunContext) => Promise<void>): Promise<void> {
  if (ctx.signal?.aborted) throw new DesyncError('E_INTERRUPTED', `interrupted before stage ${name}; the committed pin set is kept`);
  await ctx.saveJournal({ stage: name, child: null });
  await timed(ctx, name, () => fn(ctx));
}

/** Records how long `fn` took as stage `name`, on the monotonic clock (a wall-clock jump never makes a duration negative). */
export async function timed<T>(ctx: RunContext, name: StageName, fn: () => Promise<T>): Promise<T> {
  const s = performance.now();
  try {
    return await fn();
  } finally {
    // A stage that runs twice (the hold-back's second build and activation) adds up.
    ctx.res.stages[name] = (ctx.res.stages[name] ?? 0) + (performance.now() - s) / 1000;
  }
}

/** A failure after activation: the run rolls back (activation or health gate). */
export function rollbackNeeded(reason: RollbackReason, message: string, cause?: unknown, details: Record<string, unknown> = {}): DesyncError {
  return new DesyncError(reason === 'health' ? 'E_HEALTH' : 'E_ACTIVATE', message, { cause, details: { ...details, rollback: reason } });
}

export function rollbackReasonOf(err: unknown): RollbackReason | null {
  const r = err instanceof DesyncError ? err.details.rollback : undefined;
  return r === 'health' || r === 'activation' ? r : null;
}
