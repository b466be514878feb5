// What the system follows (DESIGN.md "Words": source) behind one small interface, so the loop
// is the same for a nix-channel (channel.ts) and a flake input (flake mode).
//
// The loop calls, in this order:
//   fetch → candidate → (gate, decide: the loop's business) → expose → [system build] →
//   [activation, health gate] → commit        on success
//                              → restore       on any failure from expose on, and in recovery.
// The loop itself owns the pin sets under <stateDir>/sets/<id> (pin files written and every
// pinned store path GC-rooted before `expose` is called) and the commit point (state.json);
// a source only makes a set visible to the system build in its own way, takes it back, and
// makes it durable in its own way.
import type { Candidate, CallOptions } from '../nix/adapter.js';
import type { Pin } from '../state/model.js';

export type { Candidate } from '../nix/adapter.js';

/** A complete pin set: `id` names `<stateDir>/sets/<id>`; `pins` by desync name. */
export interface PinSet {
  id: string;
  pins: Record<string, Pin>;
}

export interface FetchOutcome {
  /** True when nothing was fetched (disabled by config, or a dry run). */
  skipped: boolean;
  /** One progress line, e.g. "nix-channel --update nixos ok". */
  message: string;
}

export interface Source {
  /** "channel" or "flake" (for progress lines and the run result). */
  readonly kind: 'channel' | 'flake';
  /**
   * Step 3: bring the source up to date (nix-channel --update; flake: resolve the followed
   * input to its newest revision). A dry run must change nothing. Throws a DesyncError with
   * code E_FETCH on failure, having changed nothing.
   */
  fetch(o: CallOptions & { dryRun: boolean }): Promise<FetchOutcome>;
  /** Step 4: the candidate main nixpkgs as a /nix/store path, with its revision. Throws E_CANDIDATE. */
  candidate(o: CallOptions): Promise<Candidate>;
  /**
   * Step 7: make `set` (the candidate set, already written and rooted by the loop) what the
   * system build sees (channel: the `pins` symlink; flake: flake.lock). `previous` is the
   * committed set (null before the first commit).
   */
  expose(set: PinSet, previous: PinSet | null, o: CallOptions): Promise<void>;
  /**
   * Steps 7–8 failure, rollback and crash recovery: show the `committed` set again exactly as
   * it was (byte for byte), or nothing when there was none. `candidateId` is the set being
   * abandoned (the loop deletes its directory afterwards). Must be idempotent.
   */
  restore(committed: PinSet | null, candidateId: string | null, o: CallOptions): Promise<void>;
  /**
   * Step 9, right after the loop's commit point: make `set` durable in the source
   * (channel: nothing more to do; flake: the flake.lock stays, `git commit` when configured).
   */
  commit(set: PinSet, o: CallOptions): Promise<void>;
}
