// Taking a candidate set back: the source shows the committed set again, the candidate set's
// directory (pin files, GC roots) goes.
import type { PinSet } from '../../source/source.js';
import type { StateStore } from '../../state/store.js';
import type { Source } from '../../source/source.js';
import type { MachineState } from '../../state/model.js';
import type { RunContext } from '../context.js';

export function committedSet(state: MachineState): PinSet | null {
  return state.committed.setId === null ? null : { id: state.committed.setId, pins: state.committed.pins };
}

export function previousSet(ctx: RunContext): PinSet | null {
  return committedSet(ctx.prev);
}

/** Restores the committed set and drops the candidate set (idempotent). */
export async function restoreSet(store: StateStore, source: Source, committed: PinSet | null, candidateId: string | null, timeoutMs: number): Promise<void> {
  await source.restore(committed, candidateId, { timeoutMs });
  if (candidateId !== null && candidateId !== committed?.id) await store.removeSet(candidateId);
}

export async function abandonCandidateSet(ctx: RunContext): Promise<void> {
  await restoreSet(ctx.store, ctx.source, previousSet(ctx), ctx.res.runId, ctx.call('build').timeoutMs);
}
