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
  lastRun: { at: string; result: string; durationSeconds: number; error: string | null } | null;
  lastSuccessfulRunAt: string | null;
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
  };
}

export function buildStatus(config: Config, state: MachineState, sys: SystemInfo, now: Date, problems: StateProblem[] = [],
  running: { toplevel: string | null; sources: SystemSources | null; unverified?: string | null } = { toplevel: null, sources: null }, rebootReasons: RebootReason[] = []): StatusDoc {
  const last = state.runs.last;
  return {
    desyncs: desyncNames(config, state).map((n) => buildDesyncStatus(n, config, state, now)),
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
    lastRun: last ? { at: last.at, result: last.result, durationSeconds: last.durationSeconds, error: last.error } : null,
    lastSuccessfulRunAt: state.runs.lastSuccessAt,
    runsTotal: state.runs.total,
    stateProblems: problems,
  };
}
