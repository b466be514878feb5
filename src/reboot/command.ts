// `nixos-desync reboot [--dry-run]` (the module's timer at the window's start): reboot now when a
// reboot is required and allowed (reboot.enable, the window, no matching alert), else say why.
// The decision is recorded in the state under the run lock (what reboot_blocked shows).
import type { Config } from '../config/schema.js';
import { acquireLock } from '../state/lock.js';
import type { MachineState } from '../state/model.js';
import type { StateStore } from '../state/store.js';
import { DesyncError, errorMessage } from '../util/errors.js';
import { describeFailure, tailLines, type Runner } from '../util/exec.js';
import type { Logger } from '../util/log.js';
import { alertsCheck } from './alerts.js';
import { decideReboot, type AlertsCheck, type RebootDecision } from './decide.js';
import { syncSentinel } from './sentinel.js';
import { readRebootSituation } from './triggers.js';

export interface RebootDeps {
  config: Config;
  store: StateStore;
  run: Runner;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
  /** Defaults to asking reboot.blockOnAlerts' Prometheus (null: never blocked by alerts). */
  alerts?: AlertsCheck | null;
}

export interface RebootOutcome {
  decision: RebootDecision;
  rebooted: boolean;
  /** 0: rebooted, nothing to do, or waiting for the window / reboot.enable; 1: blocked by alerts or an unreachable Prometheus, or the reboot command failed. */
  exitCode: number;
}

/** Blocked by the fleet (alerts, Prometheus unreachable): worth a failed unit, unlike waiting for the window. */
export const blockedByFleet = (d: RebootDecision): boolean => d.blocked === 'alerts' || d.blocked === 'unreachable';

/** The reboot decision for now, from the host's links (no write). */
export async function rebootDecision(deps: Pick<RebootDeps, 'config' | 'now' | 'alerts'>): Promise<RebootDecision> {
  const { config } = deps;
  const situation = await readRebootSituation(config.profilesDir, config.runDir, config.reboot.triggers);
  return decideReboot(config, situation, (deps.now ?? (() => new Date()))(), deps.alerts === undefined ? alertsCheck(config) : deps.alerts);
}

/** Records `decision` in `state` (reboot_blocked's alerts/unreachable; null when no reboot is required). */
export function noteDecision(state: MachineState, decision: RebootDecision, at: Date): void {
  state.reboot.lastDecision = decision.required ? { at: at.toISOString(), blocked: decision.blocked, message: decision.message.slice(0, 2000) } : null;
}

/** Runs reboot.command (argv, `systemctl reboot` by default). Throws E_COMMAND when it fails. */
export async function runRebootCommand(deps: Pick<RebootDeps, 'config' | 'run' | 'env'>): Promise<void> {
  const argv = deps.config.reboot.command;
  const r = await deps.run(argv, { env: deps.env, timeoutMs: 120_000 }).catch((err: unknown) => {
    throw new DesyncError('E_COMMAND', `reboot command (${argv.join(' ')}) could not run: ${errorMessage(err)}`, { cause: err });
  });
  if (r.exitCode !== 0 || r.timedOut) {
    throw new DesyncError('E_COMMAND', `reboot command (${argv.join(' ')}) failed: ${describeFailure(r)}\n${tailLines(r.stderr || r.stdout, 5)}`);
  }
}

export async function rebootIfAllowed(deps: RebootDeps, opts: { dryRun?: boolean } = {}): Promise<RebootOutcome> {
  const { store, logger: log } = deps;
  const now = deps.now ?? (() => new Date());
  let decision: RebootDecision;
  if (opts.dryRun) {
    // No lock, no write: may run beside a run.
    decision = await rebootDecision(deps);
  } else {
    await store.prepareDir();
    // Never in the middle of a run: the run holds the lock (exit 75; the next timer tries again).
    const lock = await acquireLock(store.paths.lock, 'reboot');
    try {
      const situation = await readRebootSituation(deps.config.profilesDir, deps.config.runDir, deps.config.reboot.triggers);
      await syncSentinel(deps.config.reboot.sentinel, situation.reasons);
      decision = await decideReboot(deps.config, situation, now(), deps.alerts === undefined ? alertsCheck(deps.config) : deps.alerts);
      const read = await store.readState({ repair: false });
      // A state file that cannot be trusted stays as it is (status and the exporter report it).
      if (read.problems.length === 0) {
        noteDecision(read.value, decision, now());
        await store.writeState(read.value);
      }
    } finally {
      await lock.release();
    }
  }
  const rebooting = decision.required && decision.blocked === null;
  (blockedByFleet(decision) ? log.warn : log.info)(`reboot     ${decision.message}${rebooting && opts.dryRun ? ' (dry run: not rebooting)' : ''}`, { stage: 'reboot', blocked: decision.blocked });
  if (!rebooting || opts.dryRun) return { decision, rebooted: false, exitCode: blockedByFleet(decision) ? 1 : 0 };
  await runRebootCommand(deps);
  return { decision, rebooted: true, exitCode: 0 };
}
