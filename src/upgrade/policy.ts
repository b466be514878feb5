// The pin rules, as pure functions: passed → follow the candidate (lag 0); failed → keep the
// pin (lag + 1, unless the pin already is the candidate, or the run stops before the rebuild);
// breach when failing at lag ≥ maxLagRebuilds (so 0 = never stay behind) or behind ≥ maxBehind.
import type { Config } from '../config/schema.js';
import type { Candidate } from '../nix/adapter.js';
import { emptyDesyncRecord, type DesyncRecord, type HeldBack, type Pin, type RunDesyncOutcome } from '../state/model.js';
import { parseDuration } from '../util/duration.js';

export interface GateOutcome {
  name: string;
  passed: boolean;
  /** One-line reason of a failure (first failing attribute or check). */
  error?: string;
  /** Where it failed: its gate (default) or, held back at runtime (step 8b), the health gate. */
  stage?: 'gate' | 'health';
  /** Stage `health`: a failure of this run's health gate (counted; the health.retryAfter clock restarts). */
  runtimeFailure?: boolean;
}

export interface Decision {
  pins: Record<string, Pin>;
  records: Record<string, DesyncRecord>;
  outcomes: RunDesyncOutcome[];
  /** Desyncs that failed while already at their budget. */
  breached: string[];
  /** Desyncs that failed and have no known-good pin to stay on. */
  noPin: string[];
  /** Each breach's reasons, the lag one as a placeholder worded by oneLag (it depends on whether the run rebuilds). */
  breachParts: Record<string, string[]>;
}

export function maxBehindSeconds(maxBehind: string | null): number | null {
  if (maxBehind === null) return null;
  const ms = parseDuration(maxBehind);
  return ms === undefined ? null : ms / 1000;
}

export function decide(input: {
  config: Config;
  prevPins: Record<string, Pin>;
  prevRecords: Record<string, DesyncRecord>;
  gate: GateOutcome[];
  candidate: Candidate;
  now: Date;
  /** `upgrade --retry`: also try desyncs held back at runtime before their retry is due. */
  retry?: boolean;
}): Decision {
  const { config, prevPins, prevRecords, gate, candidate, now } = input;
  const at = now.toISOString();
  const d: Decision = { pins: {}, records: {}, outcomes: [], breached: [], noPin: [], breachParts: {} };
  for (const gated of gate) {
    const cfg = config.desyncs[gated.name]!;
    const prev = prevRecords[gated.name] ?? emptyDesyncRecord();
    const prevPin = prevPins[gated.name];
    const g = input.retry ? gated : runtimeHold(gated, prev, prevPin, candidate, now);
    if (g.passed) {
      d.pins[g.name] = { path: candidate.path, storePath: candidate.storePath, revision: candidate.revision, desyncAge: 0, pinnedAt: at };
      d.records[g.name] = {
        attempts: { passed: prev.attempts.passed + 1, failed: prev.attempts.failed },
        consecutiveFailures: 0,
        lastAttempt: { at, result: 'passed' },
        lastSuccessAt: at,
        behindSince: null,
        breached: false,
        breachReason: null,
        heldBack: null,
        runtimeFailures: prev.runtimeFailures,
      };
      d.outcomes.push({ name: g.name, result: 'passed', lagRebuilds: 0, breached: false, revision: candidate.revision, error: null });
      continue;
    }
    // A pin that already is the candidate is not behind (e.g. a flaky check on an unchanged
    // channel): the attempt counts as failed, but the lag, the behind clock and breaches do not move.
    if (prevPin && pinIsCandidate(prevPin, candidate)) {
      d.records[g.name] = {
        attempts: { passed: prev.attempts.passed, failed: prev.attempts.failed + 1 },
        consecutiveFailures: prev.consecutiveFailures + 1,
        lastAttempt: { at, result: 'failed', ...(g.error ? { error: g.error } : {}) },
        lastSuccessAt: prev.lastSuccessAt,
        behindSince: null,
        breached: false,
        breachReason: null,
        heldBack: null,
        runtimeFailures: prev.runtimeFailures,
      };
      d.pins[g.name] = { ...prevPin };
      d.outcomes.push({ name: g.name, result: 'failed', lagRebuilds: prevPin.desyncAge, breached: false, revision: prevPin.revision, error: g.error ?? null });
      continue;
    }
    const behindSince = prev.behindSince ?? at;
    const behindSec = (now.getTime() - Date.parse(behindSince)) / 1000;
    const reasons: string[] = [];
    if (prevPin && cfg.maxLagRebuilds !== null && prevPin.desyncAge >= cfg.maxLagRebuilds) {
      reasons.push(LAG_REASON); // worded below, with the lag this run ends with
    }
    const maxBehind = maxBehindSeconds(cfg.maxBehind);
    if (prevPin && maxBehind !== null && behindSec >= maxBehind) {
      reasons.push(`behind ${Math.round(behindSec)}s ≥ maxBehind ${cfg.maxBehind}`);
    }
    const breached = reasons.length > 0;
    if (breached) d.breachParts[g.name] = reasons;
    d.records[g.name] = {
      attempts: { passed: prev.attempts.passed, failed: prev.attempts.failed + 1 },
      consecutiveFailures: prev.consecutiveFailures + 1,
      lastAttempt: { at, result: 'failed', ...(g.error ? { error: g.error } : {}) },
      lastSuccessAt: prev.lastSuccessAt,
      behindSince,
      breached,
      breachReason: breached ? reasons.join('; ') : null,
      heldBack: prevPin ? heldBackOf(g, prev, at, config) : null,
      runtimeFailures: prev.runtimeFailures + (g.runtimeFailure ? 1 : 0),
    };
    if (!prevPin) {
      d.noPin.push(g.name);
      d.outcomes.push({ name: g.name, result: 'failed', lagRebuilds: 0, breached: false, revision: null, error: g.error ?? null });
      continue;
    }
    d.pins[g.name] = { ...prevPin, desyncAge: prevPin.desyncAge + 1 };
    if (breached) d.breached.push(g.name);
    d.outcomes.push({ name: g.name, result: 'failed', lagRebuilds: prevPin.desyncAge + 1, breached, revision: prevPin.revision, error: g.error ?? null, ...(g.stage === 'health' ? { stage: 'health' as const } : {}) });
  }
  const stops = d.noPin.length > 0 || (d.breached.length > 0 && config.onBreach === 'fail');
  return oneLag(d, config, prevPins, stops);
}

/**
 * A desync held back at runtime whose retry is not due yet stays on its pin whatever its gate
 * says (health.retryAfter: no rollback storm on every channel bump); once due, it is tried.
 */
function runtimeHold(g: GateOutcome, prev: DesyncRecord, prevPin: Pin | undefined, candidate: Candidate, now: Date): GateOutcome {
  const h = prev.heldBack;
  if (h?.stage !== 'health' || h.retryAt === null || Date.parse(h.retryAt) <= now.getTime()) return g;
  if (!prevPin || pinIsCandidate(prevPin, candidate)) return g;
  const gate = g.passed ? '' : ` (its gate failed too: ${g.error ?? 'failed'})`;
  return { name: g.name, passed: false, stage: 'health', error: `held back at runtime until ${h.retryAt} (health.retryAfter): ${h.reason}${gate}` };
}

/** Why a failed desync stays on its pin; a hold that goes on keeps its start and (no new runtime failure) its retry time. */
function heldBackOf(g: GateOutcome, prev: DesyncRecord, at: string, config: Config): HeldBack {
  const stage = g.stage ?? 'gate';
  const since = prev.heldBack?.since ?? at;
  if (stage === 'gate') return { stage, since, reason: g.error ?? 'its gate failed', retryAt: null };
  if (g.runtimeFailure) {
    const retryAt = new Date(Date.parse(at) + parseDuration(config.health.retryAfter)!).toISOString();
    return { stage, since, reason: g.error ?? 'its health gate failed', retryAt };
  }
  return prev.heldBack?.stage === 'health' ? { ...prev.heldBack } : { stage, since, reason: g.error ?? 'held back at runtime', retryAt: null };
}

const LAG_REASON = '\0lag';

/**
 * One lag number everywhere (pin line, breach reason, run result, status): the rebuilds since
 * the pin last followed the channel, counting this run only when it rebuilds the system. A run
 * that stops here (a breach with onBreach "fail", a desync with no pin) rebuilds nothing, so a
 * failed desync keeps its committed lag and the breach reads "lag N ≥ maxLagRebuilds M";
 * a run that goes on counts itself, and the same breach reads "lag N+1 > maxLagRebuilds M".
 * A run that went on but ends without committing (a failed build, a rollback) is worded again
 * with `stops` (decide.ts settleUncommitted): its pins were not kept, so its lags were not either.
 */
export function oneLag(d: Decision, config: Config, prevPins: Record<string, Pin>, stops: boolean): Decision {
  for (const o of d.outcomes) {
    const prevPin = prevPins[o.name];
    const rec = d.records[o.name]!;
    if (o.result !== 'failed' || !prevPin || d.noPin.includes(o.name)) continue;
    // behindSince null: the pin already is the candidate, its lag does not move either way.
    if (rec.behindSince !== null) o.lagRebuilds = stops ? prevPin.desyncAge : prevPin.desyncAge + 1;
    const parts = d.breachParts[o.name];
    if (parts) {
      const max = config.desyncs[o.name]?.maxLagRebuilds;
      const lag = stops ? `lag ${o.lagRebuilds} ≥ maxLagRebuilds ${max}` : `lag ${o.lagRebuilds} > maxLagRebuilds ${max}`;
      rec.breachReason = parts.map((r) => (r === LAG_REASON ? lag : r)).join('; ');
    }
  }
  return d;
}

/**
 * The pin is this very tree: same path (channel: the store path; flake: the narHash's store
 * path) and same revision (flake: the locked rev). A revision label alone (e.g. `.version`
 * "25.11" of every tree of a git checkout) never makes two trees one.
 */
export function pinIsCandidate(pin: Pin, candidate: Candidate): boolean {
  return pin.path === candidate.path && pin.revision === candidate.revision;
}
