// The one narrow interface in front of Nix: the loop calls only these, so tests can fake
// Nix and release each call step by step.

import type { Shield } from '../util/shield.js';
export interface CallOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Reports the process group of a started command (recorded for crash recovery). */
  onSpawn?: (pgid: number) => void;
  /** A rollback runs inside it: the CLI's second SIGTERM/SIGINT does not cut it short. */
  shield?: Shield;
}

export interface Candidate {
  /** Real path of the nixpkgs tree (may be a sub-directory of a store path). */
  path: string;
  /** Top-level store path that contains `path` (what a GC root must hold). */
  storePath: string;
  /** A label for people (`.git-revision`, else `.version`…, else the store hash; flake: the locked rev). */
  revision: string;
  /**
   * What makes two candidates the same (never the revision label alone): channel mode its real
   * path in the store; flake mode the locked rev + narHash.
   */
  id: string;
}

export interface GateRequest {
  desync: string;
  nixpkgs: string;
  attrs: string[];
  config: Record<string, unknown>;
  /** Nix system to import nixpkgs for (the running system's platform); null → builtins.currentSystem. */
  system?: string | null;
}

export interface AttrResult {
  attr: string;
  ok: boolean;
  /** Where it failed: `eval` (attribute missing, throw…) or `build` (builder failed, timeout). */
  failedAt?: 'eval' | 'build';
  error?: string;
  drvPath?: string;
  outputs: string[];
  /** Tail of the failing builder's log, when Nix kept one. */
  logTail?: string;
}

export interface DesyncBuildResult {
  desync: string;
  ok: boolean;
  attrs: AttrResult[];
  /** Set when the desync failed as a whole (e.g. importing nixpkgs with its config failed). */
  error?: string;
}

export interface GateBuildReport {
  results: Map<string, DesyncBuildResult>;
  /** Number of Nix evaluations the gate needed (1 unless a fallback was necessary). */
  evaluations: number;
}

export interface NixAdapter {
  /** `nix-channel --update NAME`. Throws E_FETCH on failure. */
  updateChannel(name: string, opts: CallOptions): Promise<void>;
  /** Real path of `nixpkgs`, added to the store when outside it, with its revision. */
  resolveCandidate(nixpkgs: string, opts: CallOptions): Promise<Candidate>;
  /** Evaluates every request's attributes in one evaluation and builds them with keep-going. */
  buildGates(requests: GateRequest[], opts: CallOptions): Promise<GateBuildReport>;
  /** Registers `link` (an absolute path) as an indirect GC root for `storePath`. */
  addRoot(storePath: string, link: string, opts: CallOptions): Promise<void>;
}
