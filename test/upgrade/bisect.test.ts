// health.bisect in the loop (step 8b, nothing declared): a fake system whose health depends on
// which revision of each desync it runs; 3 desyncs move, one is the culprit. The halving finds
// it wherever it is; each trial is one more activation (counted); the output and the run record
// list the trials; no culprit, or bisect off → the candidate is rejected whole.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStateStore } from '../../src/state/store.js';
import type { HealthFailure } from '../../src/system/system.js';
import { fakeSystem, run, type Revs } from '../helpers/fake-system.js';
import { makeConfig, type TestConfig } from '../helpers/upgrade-harness.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-bisect-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Three desyncs that declare nothing (no units, no healthChecks). */
function config(bisect = true): TestConfig {
  return makeConfig(join(dir, 'state'), {
    desyncs: { a: { requireBuilds: ['a'] }, b: { requireBuilds: ['b'] }, c: { requireBuilds: ['c'] } },
    health: { settle: '0s', failedUnits: false, bisect },
  });
}

const web: HealthFailure = { kind: 'unit', name: 'web.service', reason: 'failed after activation', tail: 'web: segfault' };
/** The host's web.service fails whenever `culprit` runs at r2. */
const brokenBy = (culprit: string) => (revs: Revs): HealthFailure[] => (revs[culprit] === 'r2' ? [web] : []);

describe('health.bisect: the culprit among 3 desyncs that moved, by halving', () => {
  it.each([
    // culprit, trials (held → healthy), activations in all (1 = the candidate's own)
    ['a', [[['a', 'b'], true], [['a'], true]], 3],
    ['b', [[['a', 'b'], true], [['a'], false], [['b'], true]], 4],
    ['c', [[['a', 'b'], false], [['c'], true]], 3],
  ] as const)('culprit %s: found in ≤ 2 halving trials, the host upgraded with it alone held back', async (culprit, trials, activations) => {
    const cfg = config();
    const { side, s } = fakeSystem(cfg.stateDir, brokenBy(culprit));
    expect((await run(cfg, side, 'r1')).result).toBe('success');
    const lines: string[] = [];
    const res = await run(cfg, side, 'r2', lines);
    expect(res.result).toBe('success');
    const expected = trials.map(([held, healthy]) => ({ held: [...held], healthy, failures: healthy ? [] : ['unit web.service'] }));
    expect(res.holdBack).toMatchObject({ activations, systemBuilds: activations, healthy: true, bisect: { suspects: ['a', 'b', 'c'], trials: expected, culprit } });
    // Each trial is one more activation of the candidate, each from the verified system (a rollback before it).
    expect(s.activations.slice(1)).toHaveLength(activations);
    expect(s.rollbacks).toBe(activations - 1);
    const revs = (held: string) => ['a', 'b', 'c'].map((n) => `${n}-${n === held ? 'r1' : 'r2'}`).join('_');
    expect(s.current).toBe(`/top/${revs(culprit)}`);
    // The gate's evaluation + one per system build.
    expect(res.evaluations).toBe(1 + activations);
    const out = lines.join('\n');
    expect(out).toMatch(/bisect +nothing claims the failure \(unit web\.service \(failed after activation\)\): searching the culprit among the 3 desync\(s\) that moved \(a, b, c\)/);
    expect(out).toMatch(/bisect +trial 1: holding back a, b → (healthy|unhealthy \(unit web\.service)/);
    expect(out).toContain(`holdback   ${culprit}: held back at its pin — found by bisect`);
    const state = (await createStateStore(cfg.stateDir).readState({ repair: false })).value;
    expect(state.committed.pins[culprit]).toMatchObject({ revision: 'r1', desyncAge: 1 });
    for (const n of ['a', 'b', 'c'].filter((x) => x !== culprit)) expect(state.committed.pins[n]).toMatchObject({ revision: 'r2', desyncAge: 0 });
    expect(state.desyncs[culprit]).toMatchObject({ heldBack: { stage: 'health' }, runtimeFailures: 1 });
    expect(state.desyncs[culprit]!.heldBack!.reason).toMatch(/^health \(bisect\): the health gate failed \(unit web\.service/);
    expect(state.rejected).toEqual([]);
    // The run record lists the trials.
    const history = (await createStateStore(cfg.stateDir).readHistory({ repair: false })).value;
    expect(history.runs.at(-1)!.holdBack).toEqual({ culprits: [culprit], activations, systemBuilds: activations, healthy: true, bisect: { suspects: ['a', 'b', 'c'], trials: expected, culprit } });
  });

  it('two culprits (a and c): holding back the one found does not help → rolled back and rejected whole, nobody blamed', async () => {
    const cfg = config();
    const { side, s } = fakeSystem(cfg.stateDir, (revs) => (revs.a === 'r2' || revs.c === 'r2' ? [web] : []));
    await run(cfg, side, 'r1');
    const lines: string[] = [];
    const res = await run(cfg, side, 'r2', lines);
    expect(res.result).toBe('rolled_back');
    expect(res.holdBack).toMatchObject({ healthy: false, activations: 3, bisect: { culprit: null, trials: [
      { held: ['a', 'b'], healthy: false, failures: ['unit web.service'] },
      { held: ['c'], healthy: false, failures: ['unit web.service'] },
    ] } });
    expect(lines.join('\n')).toMatch(/bisect +still unhealthy with c held back .*: not one desync's failure; the candidate is rolled back whole/);
    expect(s.current).toBe('/top/a-r1_b-r1_c-r1');
    const state = (await createStateStore(cfg.stateDir).readState({ repair: false })).value;
    expect(state.rejected.map((r) => r.revision)).toEqual(['r2']);
    expect(state.committed.pins.c).toMatchObject({ revision: 'r1', desyncAge: 0 });
    expect(state.desyncs.c).toMatchObject({ heldBack: null, runtimeFailures: 0 });
  });

  it('bisect off (the default): an unclaimed failure rejects the candidate whole after 1 activation', async () => {
    const cfg = config(false);
    const { side, s } = fakeSystem(cfg.stateDir, brokenBy('b'));
    await run(cfg, side, 'r1');
    const res = await run(cfg, side, 'r2');
    expect(res.result).toBe('rolled_back');
    expect(res.holdBack).toBeUndefined();
    expect(s.activations.slice(1)).toHaveLength(1);
    expect(res.evaluations).toBe(2);
  });
});
