// Runtime hold-back (DESIGN.md step 8b), the pure part: which desyncs a failed health gate is
// attributed to, and the halving search (`health.bisect`) for an undeclared culprit.
import { unitMatcher } from '../system/units.js';
import type { HealthFailure } from '../system/system.js';

/** What a desync declares of the running system (its config's `units` and `healthChecks`). */
export interface DesyncClaims {
  units: string[];
}

export interface Attribution {
  /** Moved desyncs → the failures attributed to them (a failure may name several desyncs). */
  culprits: Map<string, HealthFailure[]>;
  /** Failures no moved desync claims (a foreign unit, a host-wide check, a timeout…). */
  unclaimed: HealthFailure[];
}

/**
 * Attributes each failure of the gate: a unit failure to every moved desync whose `units` globs
 * match it, a failed `healthChecks` entry to the desync that declared it (`failure.desync`).
 * A failure that only a desync which did not move claims stays unclaimed: holding that desync
 * back changes nothing.
 */
export function attribute(failures: HealthFailure[], claims: Record<string, DesyncClaims>, moved: ReadonlySet<string>): Attribution {
  const matchers = Object.entries(claims)
    .filter(([name]) => moved.has(name))
    .map(([name, c]) => [name, unitMatcher(c.units)] as const);
  const culprits = new Map<string, HealthFailure[]>();
  const unclaimed: HealthFailure[] = [];
  const blame = (name: string, f: HealthFailure): void => {
    culprits.set(name, [...(culprits.get(name) ?? []), f]);
  };
  for (const f of failures) {
    if (f.kind === 'check' && f.desync !== undefined) {
      if (moved.has(f.desync)) blame(f.desync, f);
      else unclaimed.push(f);
      continue;
    }
    const owners = f.kind === 'unit' ? matchers.filter(([, m]) => m(f.name)).map(([name]) => name) : [];
    if (owners.length === 0) unclaimed.push(f);
    for (const name of owners) blame(name, f);
  }
  return { culprits, unclaimed };
}

/** True when holding back the culprits can make the host healthy: something is claimed, nothing is not. */
export function holdBackApplies(a: Attribution): boolean {
  return a.culprits.size > 0 && a.unclaimed.length === 0;
}

/** One trial of the halving search: the desyncs held back at their pins, and what the gate said. */
export interface BisectTrial {
  held: string[];
  healthy: boolean;
}

export interface BisectState {
  /** Desyncs that may still be the culprit (initially every desync that moved). */
  suspects: string[];
  trials: BisectTrial[];
}

export function startBisect(moved: Iterable<string>): BisectState {
  return { suspects: [...moved].sort(), trials: [] };
}

/**
 * The next set to hold back, or null when the search is over. Assumes one culprit (documented):
 * hold back the first half of the suspects; healthy → the culprit is in that half, unhealthy →
 * in the other. ⌈log2 n⌉ trials find it; `maxTrials` bounds the live activations.
 */
export function nextTrial(s: BisectState, maxTrials: number): string[] | null {
  if (s.suspects.length <= 1 || s.trials.length >= maxTrials) return null;
  return s.suspects.slice(0, Math.ceil(s.suspects.length / 2));
}

export function recordTrial(s: BisectState, held: string[], healthy: boolean): BisectState {
  const inHeld = new Set(held);
  return {
    suspects: healthy ? s.suspects.filter((n) => inHeld.has(n)) : s.suspects.filter((n) => !inHeld.has(n)),
    trials: [...s.trials, { held: [...held], healthy }],
  };
}

/**
 * The search's answer: the suspect when exactly one is left, else null (not found within the
 * bound). `confirmed`: a trial already ran with exactly that desync held back and was healthy;
 * otherwise one more activation holding it back decides (unhealthy → the failure is not one
 * desync's: rollback and rejection as without bisect).
 */
export function bisectResult(s: BisectState): { culprit: string | null; confirmed: boolean } {
  if (s.suspects.length !== 1) return { culprit: null, confirmed: false };
  const culprit = s.suspects[0]!;
  const confirmed = s.trials.some((t) => t.healthy && t.held.length === 1 && t.held[0] === culprit);
  return { culprit, confirmed };
}
