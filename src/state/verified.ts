// Is the running system a verified one (DESIGN.md "verified system")? One rule for the loop
// (a run first returns to the verified system), `status` and the exporter (system_unverified).
import type { Journal, MachineState } from './model.js';

/**
 * Why `running` is unverified, or null when it is verified or cannot be told. Unverified: a
 * system the loop activated and never confirmed healthy — the activation of a run that died or
 * whose rollback failed (its journal is left), a committed one whose run died before its boot
 * entry, the toplevel of the last rollback still running, or a boot-path candidate booted before `verify-boot` ran its health gate. A system the loop did not activate (the first run's, one switched by hand) is not
 * flagged: a run adopts it as its baseline.
 */
export function unverifiedReason(state: MachineState, journal: Journal | null, running: string | null): string | null {
  if (running === null) return null;
  const act = journal?.activation;
  // Committed (state.json) but its run ended before making it the boot default: verified once `recover` has.
  if (act && act.toplevel === running && journal!.candidateSetId !== null && journal!.candidateSetId === state.committed.setId) {
    return `${running} was committed by run ${journal!.runId}, which ended before making it the boot default`;
  }
  if (state.verified?.toplevel === running) return null;
  const pending = state.reboot.pending;
  if (pending && pending.toplevel === running) return `${running} is run ${pending.runId}'s boot-path candidate, booted, and verify-boot has not judged it yet`;
  if (act && running !== act.previous) {
    return `${running} was activated by run ${journal!.runId}, which ended before it was confirmed healthy or rolled back`;
  }
  const rb = state.rollbacks.last;
  if (rb && rb.toplevel === running) return `${running} failed its ${rb.reason === 'health' ? 'health gate' : 'activation'} in run ${rb.runId} and still runs`;
  return null;
}

/** What a run returns to when the running system is unverified: the last verified toplevel (an older state: the last rollback's target). */
export function verifiedTarget(state: MachineState): string | null {
  return state.verified?.toplevel ?? state.rollbacks.last?.previous ?? null;
}
