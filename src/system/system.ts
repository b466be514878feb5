// The system side of a run behind one interface (DESIGN.md "The run", steps 7–8): build the
// toplevel, activate exactly that toplevel, check the host's health, make it the boot default,
// and roll back to the previous toplevel. nixos.ts implements it for NixOS.
import type { CallOptions } from '../nix/adapter.js';

/** How `system.activate` activates: "switch", "boot", an argv ("argv"), or not at all (null). */
export type ActivationMode = 'switch' | 'boot' | 'argv' | null;

export interface BuiltSystem {
  /** The toplevel store path the build left as ./result (null only when activation is off and it left none). */
  toplevel: string | null;
  /** The command that built it, for progress lines. */
  command: string;
  durationMs: number;
}

export interface HealthFailure {
  /** `unit`: a systemd unit newly failed; `check`: a health.checks argv failed; `timeout`: timeouts.health ran out. */
  kind: 'unit' | 'check' | 'timeout';
  /** The unit name or the check's argv. */
  name: string;
  /** Why, in one line. */
  reason: string;
  /** Last lines of its output (`systemctl status` of a unit, stdout/stderr of a check). */
  tail: string;
  /** For a desync's own `healthChecks` entry: that desync (the check is attributed to it). */
  desync?: string;
}

export interface HealthReport {
  ok: boolean;
  failures: HealthFailure[];
  /** What was checked, for the progress line. */
  checked: { units: boolean; checks: number };
}

export interface SystemSide {
  readonly mode: ActivationMode;
  /** True when the health gate (and so rollback) applies: "switch" and argv modes. */
  readonly gated: boolean;
  /**
   * Step 7: runs `system.build` in `workDir` (fresh, run-private) and resolves the ./result it
   * must leave there. Throws E_SYSTEM_BUILD (details.tail: the output's last lines).
   */
  build(workDir: string, o: CallOptions): Promise<BuiltSystem>;
  /** The toplevel running now (`<runDir>/current-system`), or null. */
  current(): Promise<string | null>;
  /** Failed systemd units now (before activation: the baseline). Throws E_HEALTH when they cannot be read. */
  failedUnits(o: CallOptions): Promise<string[]>;
  /**
   * Step 8: activates `toplevel` now ("switch": `switch-to-configuration test`; argv: the argv
   * with NIXOS_DESYNC_TOPLEVEL; "boot"/null: nothing now). Returns a progress line or null.
   * Throws E_ACTIVATE.
   */
  activate(toplevel: string, o: CallOptions): Promise<string | null>;
  /** Step 8: the health gate against the activated `toplevel` (never throws for an unhealthy host). */
  health(toplevel: string, previous: string | null, baseline: string[], o: Omit<CallOptions, 'timeoutMs'>): Promise<HealthReport>;
  /**
   * Step 9, after the commit point: makes `toplevel` a profile generation and the boot default
   * ("switch" and "boot"; nothing otherwise). Idempotent (recovery may finish it). Throws E_ACTIVATE.
   */
  finalize(toplevel: string, o: CallOptions): Promise<string | null>;
  /**
   * Re-activates `previous` after `failed` was activated (rollback), also when the running-system
   * link already names it (idempotent), and confirms it: `<runDir>/current-system` is `previous`
   * again. Throws E_ROLLBACK when there is no previous system, its activation fails, or the
   * result is not confirmed.
   */
  rollback(previous: string | null, failed: string, o: CallOptions): Promise<string>;
}
