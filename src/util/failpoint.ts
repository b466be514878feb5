// Test-only fault injection: NIXOS_DESYNC_FAILPOINT=<name> makes the process SIGKILL itself
// when it reaches that point, so the fault suite can "pull the plug" at every step boundary.
const target = process.env.NIXOS_DESYNC_FAILPOINT;

export function failpoint(name: string): void {
  if (target !== undefined && target === name) process.kill(process.pid, 'SIGKILL');
}

export const FAILPOINTS = [
  'after-lock',
  'after-journal',
  'after-fetch',
  'after-candidate-set',
  'after-candidate-root',
  'after-gate',
  'after-set-pins',
  'after-set-roots',
  'after-pins-swap',
  'after-system-build',
  'before-activate',
  'after-activate',
  'after-health',
  'mid-state-write',
  'after-commit',
  'after-old-sets-removed',
  'after-finalize',
  'after-record-state',
  'after-history',
  'after-journal-removed',
] as const;

/** Reached only when a run rolls back (a failed activation or health gate, or a signal after the activation). */
export const ROLLBACK_FAILPOINTS = ['before-rollback', 'after-rollback'] as const;

/** Reached only in flake mode (src/source/flake.ts expose): both locks kept, flake.lock replaced. */
export const FLAKE_FAILPOINTS = ['after-flake-lock-kept', 'mid-flake-lock-write', 'after-flake-lock-write'] as const;

/** Reached only in a runtime hold-back (step 8b): back on the verified system, before the rebuild (or the next bisect trial). */
export const HOLDBACK_FAILPOINTS = ['holdback-after-rollback'] as const;
