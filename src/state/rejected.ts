// The rejected candidates (DESIGN.md "The run", step 4): a bounded set, matched by the
// candidate's identity (its store path; flake mode: locked rev + narHash), never by its
// revision label alone, and not cleared by a commit of another candidate.
import type { Candidate } from '../nix/adapter.js';
import { REJECTED_MAX, type RejectedCandidate } from './model.js';

/** True when `entry` names this very candidate. */
export function isRejected(entry: RejectedCandidate, c: Pick<Candidate, 'id' | 'path' | 'revision'>): boolean {
  // A rejection migrated from state version 2 has no identity: its path and revision together are one.
  return entry.id !== null ? entry.id === c.id : entry.path === c.path && entry.revision === c.revision;
}

export function findRejected(set: readonly RejectedCandidate[], c: Pick<Candidate, 'id' | 'path' | 'revision'>): RejectedCandidate | null {
  return set.find((e) => isRejected(e, c)) ?? null;
}

/** `set` with `entry` added (replacing an older entry of the same candidate), oldest dropped beyond REJECTED_MAX; `id` null: known by path + revision only (e.g. a boot-time rejection from provenance). */
export function withRejected(set: readonly RejectedCandidate[], entry: RejectedCandidate): RejectedCandidate[] {
  const { id } = entry;
  const out = id !== null ? withoutRejected(set, { ...entry, id }) : set.filter((e) => !(e.path === entry.path && e.revision === entry.revision));
  out.push(entry);
  return out.slice(-REJECTED_MAX);
}

/** `set` without this candidate (it went live: e.g. `--retry` after a fix). */
export function withoutRejected(set: readonly RejectedCandidate[], c: Pick<Candidate, 'id' | 'path' | 'revision'>): RejectedCandidate[] {
  return set.filter((e) => !isRejected(e, c));
}
