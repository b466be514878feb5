// The `pins` symlink of the state directory, as both sources restore it: it shows the
// committed set again (idempotent), or — before the first commit — disappears when it shows
// the abandoned candidate.
import { rm } from 'node:fs/promises';
import type { StateStore } from '../state/store.js';
import type { PinSet } from './source.js';

export async function restorePins(store: StateStore, committed: PinSet | null, candidateId: string | null): Promise<void> {
  const target = await store.pinsTarget().catch(() => null);
  if (committed !== null) {
    if (target !== committed.id) await store.pointPinsAt(committed.id);
  } else if (target !== null && target === candidateId) {
    await rm(store.paths.pins, { force: true });
  }
}
