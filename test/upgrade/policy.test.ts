import { describe, it, expect } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { decide } from '../../src/upgrade/policy.js';
import { emptyDesyncRecord, type Pin } from '../../src/state/model.js';

const cand = { path: '/nix/store/aaaa-nixos/nixos', storePath: '/nix/store/aaaa-nixos', revision: 'new', id: '/nix/store/aaaa-nixos/nixos' };
const pin = (age: number): Pin => ({ path: '/nix/store/bbbb-old', storePath: '/nix/store/bbbb-old', revision: 'old', desyncAge: age, pinnedAt: '2026-01-01T00:00:00.000Z' });
const now = new Date('2026-01-10T00:00:00Z');

describe('pin rules', () => {
  const config = parseConfig({ desyncs: { a: { maxLagRebuilds: 3 }, b: { maxLagRebuilds: null, maxBehind: '7d' }, c: {} } });

  it('passed → follows the candidate with lag 0 and clears the breach', () => {
    const d = decide({ config, prevPins: { a: pin(3) }, prevRecords: { a: { ...emptyDesyncRecord(), breached: true, behindSince: '2026-01-01T00:00:00.000Z', consecutiveFailures: 4 } }, gate: [{ name: 'a', passed: true }], candidate: cand, now });
    expect(d.pins.a).toMatchObject({ path: cand.path, storePath: cand.storePath, revision: 'new', desyncAge: 0 });
    expect(d.records.a).toMatchObject({ breached: false, behindSince: null, consecutiveFailures: 0, attempts: { passed: 1, failed: 0 } });
    expect(d.breached).toEqual([]);
  });

  it('failed below the budget → pin kept, lag + 1, behind starts at the first failure', () => {
    const d = decide({ config, prevPins: { a: pin(1) }, prevRecords: {}, gate: [{ name: 'a', passed: false, error: 'x' }], candidate: cand, now });
    expect(d.pins.a).toMatchObject({ revision: 'old', desyncAge: 2 });
    expect(d.records.a!.behindSince).toBe(now.toISOString());
    expect(d.breached).toEqual([]);
  });

  it('failed at lag ≥ maxLagRebuilds → breach (the proposal rule); one below is not', () => {
    expect(decide({ config, prevPins: { a: pin(3) }, prevRecords: {}, gate: [{ name: 'a', passed: false }], candidate: cand, now }).breached).toEqual(['a']);
    expect(decide({ config, prevPins: { a: pin(2) }, prevRecords: {}, gate: [{ name: 'a', passed: false }], candidate: cand, now }).breached).toEqual([]);
  });

  it('unlimited lag never breaches on rebuilds; maxBehind breaches on time', () => {
    const rec = (since: string) => ({ b: { ...emptyDesyncRecord(), behindSince: since } });
    expect(decide({ config, prevPins: { b: pin(500) }, prevRecords: rec('2026-01-04T00:00:00.000Z'), gate: [{ name: 'b', passed: false }], candidate: cand, now }).breached).toEqual([]);
    const d = decide({ config, prevPins: { b: pin(5) }, prevRecords: rec('2026-01-03T00:00:00.000Z'), gate: [{ name: 'b', passed: false }], candidate: cand, now });
    expect(d.breached).toEqual(['b']);
    expect(d.records.b!.breachReason).toMatch(/behind 604800s ≥ maxBehind 7d/);
  });

  it('failed with no pin → noPin, never a breach', () => {
    const d = decide({ config, prevPins: {}, prevRecords: {}, gate: [{ name: 'c', passed: false }], candidate: cand, now });
    expect(d.noPin).toEqual(['c']);
    expect(d.pins.c).toBeUndefined();
    expect(d.breached).toEqual([]);
  });

  // #11.9: a flaky check on an unchanged channel must not make a desync "behind".
  it('failed while the pin already is the candidate → not behind: lag, behind clock and breach stay put', () => {
    const same: Pin = { path: cand.path, storePath: cand.storePath, revision: cand.revision, desyncAge: 0, pinnedAt: '2026-01-09T00:00:00.000Z' };
    let prevPins: Record<string, Pin> = { a: same };
    let prevRecords = {};
    for (let i = 0; i < 5; i++) {
      const d = decide({ config, prevPins, prevRecords, gate: [{ name: 'a', passed: false, error: 'flaky' }], candidate: cand, now });
      expect(d.pins.a).toEqual(same);
      expect(d.records.a).toMatchObject({ behindSince: null, breached: false, consecutiveFailures: i + 1, attempts: { failed: i + 1 } });
      expect(d.outcomes[0]).toMatchObject({ result: 'failed', lagRebuilds: 0, breached: false });
      expect(d.breached).toEqual([]);
      prevPins = d.pins;
      prevRecords = d.records;
    }
  });

  // #11.15: maxLagRebuilds 0 means "never stay behind": the first failure is a breach.
  it('maxLagRebuilds 0: the first failure on a new revision is a breach; passing is fine', () => {
    const zero = parseConfig({ desyncs: { z: { maxLagRebuilds: 0 } } });
    const d = decide({ config: zero, prevPins: { z: pin(0) }, prevRecords: {}, gate: [{ name: 'z', passed: false, error: 'x' }], candidate: cand, now });
    expect(d.breached).toEqual(['z']);
    expect(d.records.z!.breachReason).toMatch(/lag 0 ≥ maxLagRebuilds 0/);
    expect(decide({ config: zero, prevPins: { z: pin(0) }, prevRecords: {}, gate: [{ name: 'z', passed: true }], candidate: cand, now }).breached).toEqual([]);
  });

  // #18.5: a nixpkgs git checkout without .git-revision labels every tree "25.11": the label is no identity.
  it('a pin with the same revision label but another tree is behind: maxLagRebuilds 0 breaches', () => {
    const zero = parseConfig({ desyncs: { z: { maxLagRebuilds: 0 } } });
    const older: Pin = { path: '/nix/store/cccc-nixpkgs', storePath: '/nix/store/cccc-nixpkgs', revision: '25.11', desyncAge: 0, pinnedAt: '2026-01-09T00:00:00.000Z' };
    const newer = { path: '/nix/store/dddd-nixpkgs', storePath: '/nix/store/dddd-nixpkgs', revision: '25.11', id: '/nix/store/dddd-nixpkgs' };
    const d = decide({ config: zero, prevPins: { z: older }, prevRecords: {}, gate: [{ name: 'z', passed: false, error: 'x' }], candidate: newer, now });
    expect(d.breached).toEqual(['z']);
    expect(d.pins.z).toMatchObject({ path: older.path, desyncAge: 1 });
  });
});

// Issue 22: one lag number in the pin line, the breach reason, the run result and status.
describe('one lag number', () => {
  const gateFail = (names: string[]) => names.map((name) => ({ name, passed: false }));
  it('onBreach "fail": the run stops before the rebuild, so every failed desync keeps its committed lag', () => {
    const config = parseConfig({ desyncs: { a: { maxLagRebuilds: 1 }, b: {} } });
    const d = decide({ config, prevPins: { a: pin(1), b: pin(4) }, prevRecords: {}, gate: gateFail(['a', 'b']), candidate: cand, now });
    expect(d.breached).toEqual(['a']);
    expect(d.outcomes.map((o) => [o.name, o.lagRebuilds])).toEqual([['a', 1], ['b', 4]]);
    expect(d.records.a!.breachReason).toBe('lag 1 ≥ maxLagRebuilds 1');
  });
  it('onBreach "continue": the run rebuilds with the stale pin, so the lag counts it, and the breach says the same number', () => {
    const config = parseConfig({ onBreach: 'continue', desyncs: { a: { maxLagRebuilds: 1 } } });
    const d = decide({ config, prevPins: { a: pin(1) }, prevRecords: {}, gate: gateFail(['a']), candidate: cand, now });
    expect(d.outcomes[0]).toMatchObject({ lagRebuilds: 2, breached: true });
    expect(d.pins.a!.desyncAge).toBe(2);
    expect(d.records.a!.breachReason).toBe('lag 2 > maxLagRebuilds 1');
  });
  it('no breach: lag + 1 in the outcome and the pin alike', () => {
    const config = parseConfig({ desyncs: { a: { maxLagRebuilds: 5 } } });
    const d = decide({ config, prevPins: { a: pin(1) }, prevRecords: {}, gate: gateFail(['a']), candidate: cand, now });
    expect([d.outcomes[0]!.lagRebuilds, d.pins.a!.desyncAge]).toEqual([2, 2]);
  });
});

describe('heldBack (why a desync stays on its pin)', () => {
  const config = parseConfig({ desyncs: { a: { maxLagRebuilds: 3 } }, health: { retryAfter: '24h' } });
  const at = (iso: string) => new Date(iso);

  it('a failed gate holds it at stage gate (since the first failure); passing clears it', () => {
    const d1 = decide({ config, prevPins: { a: pin(0) }, prevRecords: {}, gate: [{ name: 'a', passed: false, error: 'hm: build failed' }], candidate: cand, now });
    expect(d1.records.a!.heldBack).toEqual({ stage: 'gate', since: now.toISOString(), reason: 'hm: build failed', retryAt: null });
    const later = at('2026-01-11T00:00:00Z');
    const d2 = decide({ config, prevPins: { a: pin(1) }, prevRecords: d1.records, gate: [{ name: 'a', passed: false, error: 'again' }], candidate: cand, now: later });
    expect(d2.records.a!.heldBack).toEqual({ stage: 'gate', since: now.toISOString(), reason: 'again', retryAt: null });
    const d3 = decide({ config, prevPins: { a: pin(2) }, prevRecords: d2.records, gate: [{ name: 'a', passed: true }], candidate: cand, now: later });
    expect(d3.records.a!.heldBack).toBeNull();
  });

  it('a runtime failure holds it at stage health, counts it, and sets the retry time (health.retryAfter)', () => {
    const d = decide({ config, prevPins: { a: pin(0) }, prevRecords: {}, gate: [{ name: 'a', passed: false, stage: 'health', runtimeFailure: true, error: 'health: unit x.service (failed)' }], candidate: cand, now });
    expect(d.records.a!.heldBack).toEqual({ stage: 'health', since: now.toISOString(), reason: 'health: unit x.service (failed)', retryAt: '2026-01-11T00:00:00.000Z' });
    expect(d.records.a!.runtimeFailures).toBe(1);
    expect(d.outcomes[0]).toMatchObject({ result: 'failed', stage: 'health', lagRebuilds: 1 });
  });

  it('before retryAt a passing desync held at runtime stays on its pin (lag + 1, stage health); from retryAt on it follows', () => {
    const held = decide({ config, prevPins: { a: pin(0) }, prevRecords: {}, gate: [{ name: 'a', passed: false, stage: 'health', runtimeFailure: true, error: 'health: unit x.service (failed)' }], candidate: cand, now }).records;
    const newer = { ...cand, path: '/nix/store/cccc-newer/nixos', storePath: '/nix/store/cccc-newer', revision: 'newer', id: '/nix/store/cccc-newer/nixos' };
    const early = decide({ config, prevPins: { a: pin(1) }, prevRecords: held, gate: [{ name: 'a', passed: true }], candidate: newer, now: at('2026-01-10T23:59:00Z') });
    expect(early.pins.a).toMatchObject({ revision: 'old', desyncAge: 2 });
    expect(early.outcomes[0]).toMatchObject({ result: 'failed', stage: 'health', lagRebuilds: 2 });
    expect(early.outcomes[0]!.error).toMatch(/^held back at runtime until 2026-01-11T00:00:00.000Z \(health.retryAfter\): health: unit x.service/);
    // The hold goes on unchanged: same start, same retry time, no new runtime failure counted.
    expect(early.records.a!.heldBack).toEqual(held.a!.heldBack);
    expect(early.records.a!.runtimeFailures).toBe(1);
    const due = decide({ config, prevPins: { a: pin(2) }, prevRecords: early.records, gate: [{ name: 'a', passed: true }], candidate: newer, now: at('2026-01-11T00:00:00Z') });
    expect(due.pins.a).toMatchObject({ revision: 'newer', desyncAge: 0 });
    expect(due.records.a!.heldBack).toBeNull();
    expect(due.records.a!.runtimeFailures).toBe(1);
  });

  it('upgrade --retry tries a desync held at runtime before its retry is due (an operator who fixed it need not wait)', () => {
    const held = decide({ config, prevPins: { a: pin(0) }, prevRecords: {}, gate: [{ name: 'a', passed: false, stage: 'health', runtimeFailure: true, error: 'health: unit x.service (failed)' }], candidate: cand, now }).records;
    const newer = { ...cand, path: '/nix/store/cccc-newer/nixos', storePath: '/nix/store/cccc-newer', revision: 'newer', id: '/nix/store/cccc-newer/nixos' };
    const early = at('2026-01-10T01:00:00Z');
    expect(decide({ config, prevPins: { a: pin(1) }, prevRecords: held, gate: [{ name: 'a', passed: true }], candidate: newer, now: early }).pins.a).toMatchObject({ revision: 'old' });
    const retried = decide({ config, prevPins: { a: pin(1) }, prevRecords: held, gate: [{ name: 'a', passed: true }], candidate: newer, now: early, retry: true });
    expect(retried.pins.a).toMatchObject({ revision: 'newer', desyncAge: 0 });
    expect(retried.records.a!.heldBack).toBeNull();
  });

  it('held back again after its retry: the hold keeps its start, the retry time restarts', () => {
    const first = decide({ config, prevPins: { a: pin(0) }, prevRecords: {}, gate: [{ name: 'a', passed: false, stage: 'health', runtimeFailure: true, error: 'e1' }], candidate: cand, now }).records;
    const later = at('2026-01-12T00:00:00Z');
    const again = decide({ config, prevPins: { a: pin(1) }, prevRecords: first, gate: [{ name: 'a', passed: false, stage: 'health', runtimeFailure: true, error: 'e2' }], candidate: cand, now: later });
    expect(again.records.a!.heldBack).toEqual({ stage: 'health', since: now.toISOString(), reason: 'e2', retryAt: '2026-01-13T00:00:00.000Z' });
    expect(again.records.a!.runtimeFailures).toBe(2);
  });
});
