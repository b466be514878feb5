// The `status --json` document (fixed fields in DESIGN.md), built from state + host info.
import { describeWindow, nextWindowStart } from '../reboot/schedule.js';
import type { RebootReason } from '../reboot/triggers.js';
import type { Config } from '../config/schema.js';
import type { SystemInfo } from '../system/running.js';
import { maxBehindSeconds } from '../upgrade/policy.js';
import type { MachineState, SystemSources } from '../state/model.js';
import { contractSources } from '../system/generations.js';
import type { StateProblem } from '../state/store.js';

export interface DesyncStatus {
  name: string;
  revision: string | null;
  path: string | null;
  lagRebuilds: number;
  maxLagRebuilds: number | null;
  behindSeconds: number;
  maxBehindSeconds: number | null;
  breached: boolean;
  breachReason: string | null;
  inSync: boolean;
  consecutiveFailures: number;
  lastAttempt: { at: string; result: 'passed' | 'failed'; error?: string } | null;
  lastSuccessAt: string | null;
  configured: boolean;
  /** Why it stays on its pin (DESIGN.md `heldBack`): its gate failed, or it was held back at runtime (until `retryAt`). */
  heldBack: { stage: 'gate' | 'health'; since: string; reason: string; retryAt: string | null } | null;
  /** Health gate failures attributed to it (nixos_desync_desync_runtime_failures_total). */
  runtimeFailures: number;
  /** Whose desync it is: the loop's (state.json), or the desync proposal's own state file (exporter.prDesyncDir). */
  source: 'loop' | 'pr';
  /** Its last gate passed, but that run did not commit (build failure, rollback): still on its pin. */
  passedUncommitted: boolean;
}

/** A desync proposal's state file, as watch/pr-desync.ts reads it. */
export interface PrDesyncInput {
  name: string;
  desyncAge: number;
  path: string;
  revision: string;
}

/** The run lock and the run journal as `status` finds them. */
export interface RunActivity {
  /** A live process holds the run lock: its pid, since when, and (from its journal) its run id and stage. */
  inProgress: { pid: number; since: string | null; runId: string | null; stage: string | null } | null;
  /** A run died and left its journal: `recover` (or the next run) finishes or rolls it back. */
  interrupted: { runId: string; stage: string; startedAt: string } | null;
}

export interface StatusDoc {
  desyncs: DesyncStatus[];
  system: {
    generation: number | null;
    generationTimestamp: string | null;
    generations: number;
    rebootRequired: boolean;
    activationPending: boolean;
    /** The running toplevel and what it was built from (null: unknown or not built by the loop). */
    toplevel: string | null;
    sources: Record<string, unknown> | null;
    /** False while the running system is unverified (docs/upgrade-loop.md "Verified system"), with the reason. */
    verified: boolean;
    unverifiedReason: string | null;
    /** Why a reboot is required: each reboot trigger in which the boot default differs from the booted system. */
    rebootReasons: RebootReason[];
  };
  /** Reboots: the window, what blocks a required reboot, a candidate waiting for its boot, the last boot's health gate. */
  reboot: {
    enabled: boolean;
    window: string;
    nextWindow: string | null;
    lastDecision: MachineState['reboot']['lastDecision'];
    pending: MachineState['reboot']['pending'];
    lastBoot: MachineState['reboot']['lastBoot'];
  };
  /** The last rollback, and the candidates rollbacks rejected, oldest first (each skipped until --retry). */
  rollback: MachineState['rollbacks']['last'];
  rejected: MachineState['rejected'];
  /** `at`: when it started; `finishedAt`: when it ended. */
  lastRun: { at: string; finishedAt: string; result: string; durationSeconds: number; error: string | null } | null;
  /** When the last successful run ended. */
  lastSuccessfulRunAt: string | null;
  run: RunActivity;
  /** Why exporter.prDesyncDir's files could not all be read (they are left out), else empty. */
  prProblems: string[];
  runsTotal: MachineState['runs']['total'];
  stateProblems: StateProblem[];
}

/** Desync names to report: configured ones, plus pinned ones no longer in the config. */
export function desyncNames(config: Config, state: MachineState): string[] {
  return [...new Set([...Object.keys(config.desyncs), ...Object.keys(state.committed.pins)])].sort();
}

export function buildDesyncStatus(name: string, config: Config, state: MachineState, now: Date): DesyncStatus {
  const cfg = config.desyncs[name];
  const pin = state.committed.pins[name];
  const rec = state.desyncs[name];
  const behind = rec?.behindSince ? Math.max(0, (now.getTime() - Date.parse(rec.behindSince)) / 1000) : 0;
  const lag = pin?.desyncAge ?? 0;
  return {
    name,
    revision: pin?.revision ?? null,
    path: pin?.path ?? null,
    lagRebuilds: lag,
    maxLagRebuilds: cfg ? cfg.maxLagRebuilds : null,
    behindSeconds: Math.round(behind),
    maxBehindSeconds: cfg ? maxBehindSeconds(cfg.maxBehind) : null,
    breached: rec?.breached ?? false,
    breachReason: rec?.breachReason ?? null,
    inSync: pin !== undefined && lag === 0 && rec?.lastAttempt?.result !== 'failed',
    consecutiveFailures: rec?.consecutiveFailures ?? 0,
    lastAttempt: rec?.lastAttempt ?? null,
    lastSuccessAt: rec?.lastSuccessAt ?? null,
    configured: cfg !== undefined,
    heldBack: pin !== undefined ? (rec?.heldBack ?? null) : null,
    runtimeFailures: rec?.runtimeFailures ?? 0,
    source: 'loop',
    passedUncommitted: pin !== undefined && lag > 0 && rec?.lastAttempt?.result === 'passed',
  };
}

/** A proposal desync as the exporter's pr_compat collector exports it: budget exporter.prMaxDesyncAge, breached at or over it. */
export function prDesyncStatus(d: PrDesyncInput, config: Config): DesyncStatus {
  const max = config.exporter.prMaxDesyncAge;
  return {
    name: d.name, revision: d.revision, path: d.path, lagRebuilds: d.desyncAge, maxLagRebuilds: max, behindSeconds: 0, maxBehindSeconds: null,
    breached: max !== null && d.desyncAge >= max, breachReason: max !== null && d.desyncAge >= max ? `desyncAge ${d.desyncAge} ≥ maxDesyncAge ${max}` : null,
    inSync: d.desyncAge === 0, consecutiveFailures: 0, lastAttempt: null, lastSuccessAt: null, configured: true, heldBack: null, runtimeFailures: 0, source: 'pr', passedUncommitted: false,
  };
}

export function buildStatus(config: Config, state: MachineState, sys: SystemInfo, now: Date, problems: StateProblem[] = [],
  running: { toplevel: string | null; sources: SystemSources | null; unverified?: string | null } = { toplevel: null, sources: null }, rebootReasons: RebootReason[] = [],
  more: { run?: RunActivity; pr?: { desyncs: PrDesyncInput[]; problems: string[] } } = {}): StatusDoc {
  const last = state.runs.last;
  const names = desyncNames(config, state);
  // As the metrics: a proposal file counts for a name the loop has no pin for.
  const pr = (more.pr?.desyncs ?? []).filter((d) => !Object.hasOwn(state.committed.pins, d.name));
  return {
    desyncs: [...names.filter((n) => !pr.some((d) => d.name === n)).map((n) => buildDesyncStatus(n, config, state, now)), ...pr.map((d) => prDesyncStatus(d, config))]
      .sort((a, b) => a.name.localeCompare(b.name)),
    system: {
      generation: sys.generation,
      generationTimestamp: sys.generationTimestamp ? sys.generationTimestamp.toISOString() : null,
      generations: sys.generations,
      rebootRequired: sys.rebootRequired || rebootReasons.length > 0,
      activationPending: sys.activationPending,
      toplevel: running.toplevel,
      sources: running.sources ? contractSources(running.sources) : null,
      verified: (running.unverified ?? null) === null,
      unverifiedReason: running.unverified ?? null,
      rebootReasons,
    },
    reboot: {
      enabled: config.reboot.enable,
      window: describeWindow(config.reboot.window),
      nextWindow: nextWindowStart(config.reboot.window, now)?.toISOString() ?? null,
      lastDecision: state.reboot.lastDecision,
      pending: state.reboot.pending,
      lastBoot: state.reboot.lastBoot,
    },
    rollback: state.rollbacks.last,
    rejected: state.rejected,
    lastRun: last ? { at: last.at, finishedAt: last.finishedAt, result: last.result, durationSeconds: last.durationSeconds, error: last.error } : null,
    lastSuccessfulRunAt: state.runs.lastSuccessAt,
    run: more.run ?? { inProgress: null, interrupted: null },
    prProblems: more.pr?.problems ?? [],
    runsTotal: state.runs.total,
    stateProblems: problems,
  };
}
