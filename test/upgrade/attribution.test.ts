import { describe, it, expect } from 'vitest';
import { attribute, holdBackApplies, startBisect, nextTrial, recordTrial, bisectResult } from '../../src/upgrade/attribution.js';
import type { HealthFailure } from '../../src/system/system.js';

const unit = (name: string): HealthFailure => ({ kind: 'unit', name, reason: 'failed after the activation', tail: '' });
const check = (name: string, desync?: string): HealthFailure => ({ kind: 'check', name, reason: 'exit 1', tail: '', ...(desync ? { desync } : {}) });
const claims = {
  synapse: { units: ['matrix-synapse.service', 'matrix-synapse-*.service'] },
  hm: { units: ['home-manager-*.service'] },
  ha: { units: [] },
};

describe('attribution of a failed health gate (step 8b)', () => {
  it('a failing unit matching a moved desync\'s glob is that desync\'s', () => {
    const a = attribute([unit('matrix-synapse-worker1.service')], claims, new Set(['synapse', 'hm']));
    expect([...a.culprits.keys()]).toEqual(['synapse']);
    expect(a.unclaimed).toEqual([]);
    expect(holdBackApplies(a)).toBe(true);
  });

  it('a failing healthChecks entry is the desync that declared it', () => {
    const a = attribute([check('/bin/hm-smoke', 'hm')], claims, new Set(['hm']));
    expect(a.culprits.get('hm')).toHaveLength(1);
    expect(holdBackApplies(a)).toBe(true);
  });

  it('one failure nobody claims means no hold-back (rejected whole), even when another is claimed', () => {
    const a = attribute([unit('matrix-synapse.service'), unit('sshd.service')], claims, new Set(['synapse']));
    expect([...a.culprits.keys()]).toEqual(['synapse']);
    expect(a.unclaimed.map((f) => f.name)).toEqual(['sshd.service']);
    expect(holdBackApplies(a)).toBe(false);
  });

  it('a unit claimed only by a desync that did not move stays unclaimed: holding it back changes nothing', () => {
    const a = attribute([unit('home-manager-alice.service'), check('/bin/hm-smoke', 'hm')], claims, new Set(['synapse']));
    expect(a.culprits.size).toBe(0);
    expect(a.unclaimed).toHaveLength(2);
    expect(holdBackApplies(a)).toBe(false);
  });

  it('host checks and timeouts are never a desync\'s', () => {
    const a = attribute([check('/bin/host-check'), { kind: 'timeout', name: 'timeouts.health', reason: 'ran out', tail: '' }], claims, new Set(['synapse', 'hm']));
    expect(a.culprits.size).toBe(0);
    expect(holdBackApplies(a)).toBe(false);
  });

  it('a unit matched by two moved desyncs holds back both', () => {
    const a = attribute([unit('matrix-synapse.service')], { ...claims, hm: { units: ['matrix-*'] } }, new Set(['synapse', 'hm']));
    expect([...a.culprits.keys()].sort()).toEqual(['hm', 'synapse']);
  });

  it('a healthy gate attributes nothing', () => {
    expect(holdBackApplies(attribute([], claims, new Set(['synapse'])))).toBe(false);
  });
});

describe('bisect: the halving search for one undeclared culprit', () => {
  // Plays the search against a host where holding back `culprit` (and only that) heals it.
  function play(moved: string[], culprit: string | null, maxTrials = 8) {
    let s = startBisect(moved);
    for (let hold = nextTrial(s, maxTrials); hold !== null; hold = nextTrial(s, maxTrials)) {
      s = recordTrial(s, hold, culprit !== null && hold.includes(culprit));
    }
    return { s, result: bisectResult(s) };
  }

  it.each(['a', 'b', 'c'])('finds culprit %s among 3 moved desyncs in at most 2 activations', (culprit) => {
    const { s, result } = play(['c', 'a', 'b'], culprit);
    expect(result.culprit).toBe(culprit);
    expect(s.trials.length).toBeLessThanOrEqual(2);
  });

  it('finds one culprit among 16 in 4 trials (⌈log2 16⌉)', () => {
    const moved = Array.from({ length: 16 }, (_, i) => `d${String(i).padStart(2, '0')}`);
    for (const culprit of moved) {
      const { s, result } = play(moved, culprit);
      expect(result.culprit).toBe(culprit);
      expect(s.trials).toHaveLength(4);
    }
  });

  it('says whether the culprit is already confirmed by a healthy trial holding only it', () => {
    expect(play(['a', 'b'], 'a').result).toEqual({ culprit: 'a', confirmed: true });
    expect(play(['a', 'b'], 'b').result).toEqual({ culprit: 'b', confirmed: false });
  });

  it('stops at the trial bound without naming a culprit', () => {
    const { s, result } = play(['a', 'b', 'c', 'd'], 'd', 1);
    expect(s.trials).toHaveLength(1);
    expect(result.culprit).toBeNull();
  });

  it('a failure no single desync causes leaves an unconfirmed suspect: the confirming activation decides', () => {
    const { s, result } = play(['a', 'b', 'c'], null);
    expect(s.trials.every((t) => !t.healthy)).toBe(true);
    expect(result.confirmed).toBe(false);
  });
});
