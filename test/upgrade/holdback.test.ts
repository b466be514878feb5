// Step 8b with a fake Nix and a fake system whose health depends on the revisions the activated
// system was built from (the pins the build saw): the declared culprit is held back and the host
// still upgrades; an unclaimed failure, attribute off, or a second failure rejects the candidate.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStateStore } from '../../src/state/store.js';
import type { HealthFailure } from '../../src/system/system.js';
import { fakeSystem, run, type Revs } from '../helpers/fake-system.js';
import { makeConfig, type TestConfig } from '../helpers/upgrade-harness.js';
import { buildStatus } from '../../src/views/status.js';
import { renderStatus } from '../../src/cli/status.js';
import { renderGenerations } from '../../src/cli/generations.js';
import { contractSources } from '../../src/system/generations.js';
import type { SystemInfo } from '../../src/system/running.js';

const noSystem: SystemInfo = { generation: null, generationTimestamp: null, generations: 0, rebootRequired: false, activationPending: false };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-holdback-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function config(health: Record<string, unknown> = {}): TestConfig {
  return makeConfig(join(dir, 'state'), {
    desyncs: {
      hm: { requireBuilds: ['home-manager'], units: ['home-manager-*.service'] },
      syn: { requireBuilds: ['matrix-synapse'], units: ['matrix-synapse.service'], maxLagRebuilds: 3 },
    },
    health: { settle: '0s', failedUnits: false, ...health },
  });
}

const synUnit: HealthFailure = { kind: 'unit', name: 'matrix-synapse.service', reason: 'failed after activation', tail: 'synapse: ImportError: no module named twisted' };
/** matrix-synapse fails at revision r2 (its own unit). */
const synBrokenAtR2 = (revs: Revs): HealthFailure[] => (revs.syn === 'r2' ? [synUnit] : []);

describe('runtime hold-back (step 8b)', () => {
  it('a failure claimed by a desync that moved: that desync stays on its pin, the host is upgraded (2 builds, 2 activations)', async () => {
    const cfg = config();
    const { side, s } = fakeSystem(cfg.stateDir, synBrokenAtR2);
    expect((await run(cfg, side, 'r1')).result).toBe('success');
    const lines: string[] = [];
    const res = await run(cfg, side, 'r2', lines);
    expect(res.result).toBe('success');
    expect(res.exitCode).toBe(0);
    expect(s.current).toBe('/top/hm-r2_syn-r1');
    expect(s.activations).toEqual(['/top/hm-r1_syn-r1', '/top/hm-r2_syn-r2', '/top/hm-r2_syn-r1']);
    expect(s.rollbacks).toBe(1);
    expect(res.holdBack).toMatchObject({ activations: 2, systemBuilds: 2, healthy: true });
    expect(Object.keys(res.holdBack!.culprits)).toEqual(['syn']);
    expect(res.desyncs.find((d) => d.name === 'syn')).toMatchObject({ result: 'failed', lagRebuilds: 1, revision: 'r1', stage: 'health' });
    expect(res.desyncs.find((d) => d.name === 'hm')).toMatchObject({ result: 'passed', revision: 'r2' });
    const out = lines.join('\n');
    expect(out).toContain('syn: held back at its pin — unit matrix-synapse.service (failed after activation)');
    expect(out).toContain('ImportError: no module named twisted');
    const state = await createStateStore(cfg.stateDir).readState({ repair: false });
    expect(state.value.committed.pins.syn).toMatchObject({ revision: 'r1', desyncAge: 1 });
    expect(state.value.committed.pins.hm).toMatchObject({ revision: 'r2', desyncAge: 0 });
    expect(state.value.desyncs.syn!.lastAttempt).toMatchObject({ result: 'failed' });
    expect(state.value.desyncs.syn!.lastAttempt!.error).toContain('health: unit matrix-synapse.service');
    expect(state.value.rejected).toEqual([]);
    // Visible: the hold (stage health, its evidence, the retry time), the counter, the generation it produced.
    const held = state.value.desyncs.syn!;
    expect(held.heldBack).toMatchObject({ stage: 'health', reason: 'health: unit matrix-synapse.service (failed after activation)' });
    expect(Date.parse(held.heldBack!.retryAt!) - Date.parse(held.heldBack!.since)).toBe(24 * 3600 * 1000);
    expect(held.runtimeFailures).toBe(1);
    expect(state.value.desyncs.hm).toMatchObject({ heldBack: null, runtimeFailures: 0 });
    expect(state.value.systems['/top/hm-r2_syn-r1']!.desyncs.syn).toMatchObject({ revision: 'r1', desyncAge: 1, heldBack: { stage: 'health' } });
    const doc = buildStatus(cfg, state.value, noSystem, new Date());
    expect(doc.desyncs.find((d) => d.name === 'syn')).toMatchObject({ heldBack: { stage: 'health', since: held.heldBack!.since }, runtimeFailures: 1 });
    const text = renderStatus(doc);
    expect(text).toMatch(/syn\s+r1\s+1\/3 .* held back \(runtime\)/);
    const gen = { generation: 7, toplevel: '/top/hm-r2_syn-r1', timestamp: null, current: true, booted: false, sources: contractSources(state.value.systems['/top/hm-r2_syn-r1']!) };
    expect(renderGenerations([gen])).toMatch(/nixpkgs r2, hm r2, syn r1 \(lag 1, held back at runtime\)/);
    expect(text).toContain(`syn: held back at runtime since ${held.heldBack!.since}, tried again after ${held.heldBack!.retryAt} — health: unit matrix-synapse.service`);
  });

  it("a failing desync's own healthChecks entry is attributed to it", async () => {
    const cfg = config();
    const check: HealthFailure = { kind: 'check', name: 'hm-smoke', reason: 'exit 1', tail: 'no profile', desync: 'hm' };
    const { side, s } = fakeSystem(cfg.stateDir, (revs) => (revs.hm === 'r2' ? [check] : []));
    await run(cfg, side, 'r1');
    const res = await run(cfg, side, 'r2');
    expect(res.result).toBe('success');
    expect(s.current).toBe('/top/hm-r1_syn-r2');
    expect(res.desyncs.find((d) => d.name === 'hm')).toMatchObject({ result: 'failed', lagRebuilds: 1, stage: 'health' });
  });

  it('a failure nobody claims: the candidate is rolled back and rejected whole (1 activation)', async () => {
    const cfg = config();
    const foreign: HealthFailure = { kind: 'unit', name: 'nginx.service', reason: 'failed', tail: '' };
    const { side, s } = fakeSystem(cfg.stateDir, (revs) => (revs.syn === 'r2' ? [synUnit, foreign] : []));
    await run(cfg, side, 'r1');
    const lines: string[] = [];
    const res = await run(cfg, side, 'r2', lines);
    expect(res.result).toBe('rolled_back');
    expect(res.holdBack).toBeUndefined();
    expect(s.activations).toHaveLength(2);
    expect(s.current).toBe('/top/hm-r1_syn-r1');
    expect(lines.join('\n')).toContain('not claimed by a desync that moved: unit nginx.service');
    const state = await createStateStore(cfg.stateDir).readState({ repair: false });
    expect(state.value.rejected.map((r) => r.revision)).toEqual(['r2']);
    expect(state.value.committed.pins.syn).toMatchObject({ revision: 'r1', desyncAge: 0 });
  });

  it('health.attribute false: a claimed failure still rejects the candidate whole', async () => {
    const cfg = config({ attribute: false });
    const { side, s } = fakeSystem(cfg.stateDir, synBrokenAtR2);
    await run(cfg, side, 'r1');
    const res = await run(cfg, side, 'r2');
    expect(res.result).toBe('rolled_back');
    expect(s.activations).toHaveLength(2);
    expect(s.current).toBe('/top/hm-r1_syn-r1');
  });

  it('still unhealthy with the culprit held back: rollback and rejection, the culprit not blamed (once per run)', async () => {
    const cfg = config();
    // Whatever moved, matrix-synapse fails: holding syn back does not help.
    const { side, s } = fakeSystem(cfg.stateDir, (revs) => (Object.values(revs).includes('r2') ? [synUnit] : []));
    await run(cfg, side, 'r1');
    const res = await run(cfg, side, 'r2');
    expect(res.result).toBe('rolled_back');
    expect(res.holdBack).toMatchObject({ activations: 2, systemBuilds: 2, healthy: false });
    expect(s.activations).toEqual(['/top/hm-r1_syn-r1', '/top/hm-r2_syn-r2', '/top/hm-r2_syn-r1']);
    expect(s.current).toBe('/top/hm-r1_syn-r1');
    const state = await createStateStore(cfg.stateDir).readState({ repair: false });
    expect(state.value.rejected.map((r) => r.revision)).toEqual(['r2']);
    expect(state.value.committed.pins.syn).toMatchObject({ revision: 'r1', desyncAge: 0 });
    expect(state.value.desyncs.syn!.lastAttempt).toMatchObject({ result: 'passed' });
  });

  it('a culprit at its budget breaches like a failed gate (onBreach "fail": rolled back to the verified system, exit 1)', async () => {
    const cfg = makeConfig(join(dir, 'state'), {
      desyncs: { syn: { requireBuilds: ['matrix-synapse'], units: ['matrix-synapse.service'], maxLagRebuilds: 0 } },
      health: { settle: '0s', failedUnits: false },
    });
    const { side, s } = fakeSystem(cfg.stateDir, synBrokenAtR2);
    await run(cfg, side, 'r1');
    const res = await run(cfg, side, 'r2');
    expect(res.result).toBe('breach');
    expect(res.exitCode).toBe(1);
    expect(s.current).toBe('/top/syn-r1');
    const state = await createStateStore(cfg.stateDir).readState({ repair: false });
    expect(state.value.desyncs.syn).toMatchObject({ breached: true });
    expect(state.value.committed.pins.syn).toMatchObject({ revision: 'r1', desyncAge: 0 });
    // Its health gate failed and nothing saved it: rejected, so the next run does not activate it again.
    expect(state.value.rejected.map((r) => r.revision)).toEqual(['r2']);
    expect(s.activations).toEqual(['/top/syn-r1', '/top/syn-r2']);
  });

  it('the rebuild with the culprit held back fails: the health verdict stands, the candidate is rejected (no second activation storm)', async () => {
    const cfg = config();
    const { side, s } = fakeSystem(cfg.stateDir, synBrokenAtR2);
    await run(cfg, side, 'r1');
    const build = side.build.bind(side);
    side.build = async (o) => {
      if (s.builds === 2) throw new Error('error: builder for home-manager failed (out of disk space)');
      return build(o);
    };
    const lines: string[] = [];
    const res = await run(cfg, side, 'r2', lines);
    expect(res.exitCode).toBe(1);
    expect(s.activations).toEqual(['/top/hm-r1_syn-r1', '/top/hm-r2_syn-r2']);
    expect(s.current).toBe('/top/hm-r1_syn-r1');
    expect(lines.join('\n')).toMatch(/the try with desyncs held back ended without a verdict \(.*out of disk space.*\): candidate r2 is rejected/);
    const state = await createStateStore(cfg.stateDir).readState({ repair: false });
    expect(state.value.rejected.map((r) => r.revision)).toEqual(['r2']);
    expect(state.value.committed.pins).toMatchObject({ hm: { revision: 'r1' }, syn: { revision: 'r1' } });
  });
});

describe('health.retryAfter: no rollback storm', () => {
  it('held back at runtime: not activated at a newer revision before retryAfter; then tried once, held again while it still fails, followed once healthy', async () => {
    const cfg = makeConfig(join(dir, 'state'), {
      desyncs: { hm: { requireBuilds: ['home-manager'] }, syn: { requireBuilds: ['matrix-synapse'], units: ['matrix-synapse.service'], maxLagRebuilds: 10 } },
      health: { settle: '0s', failedUnits: false, retryAfter: '24h' },
    });
    let synFixed = false;
    // matrix-synapse fails at every revision after r1 until it is fixed.
    const { side, s } = fakeSystem(cfg.stateDir, (revs) => (!synFixed && revs.syn !== 'r1' ? [synUnit] : []));
    const t0 = Date.parse('2026-03-01T04:00:00.000Z');
    const at = (h: number) => () => new Date(t0 + h * 3600_000);
    expect((await run(cfg, side, 'r1', [], at(0))).result).toBe('success');
    const r2 = await run(cfg, side, 'r2', [], at(1));
    expect(r2.holdBack).toMatchObject({ activations: 2, healthy: true });
    expect(s.activations).toHaveLength(3);
    // r3, an hour later: syn is not activated at r3 at all (1 activation, no rollback), it lags as held.
    const lines: string[] = [];
    const r3 = await run(cfg, side, 'r3', lines, at(2));
    expect(r3.result).toBe('success');
    expect(r3.holdBack).toBeUndefined();
    expect(s.activations.slice(3)).toEqual(['/top/hm-r3_syn-r1']);
    expect(s.rollbacks).toBe(1);
    expect(r3.desyncs.find((d) => d.name === 'syn')).toMatchObject({ result: 'failed', stage: 'health', lagRebuilds: 2, revision: 'r1' });
    expect(lines.join('\n')).toMatch(/syn: stays on r1 \(lag 2\/10/);
    const st3 = (await createStateStore(cfg.stateDir).readState({ repair: false })).value.desyncs.syn!;
    expect(st3.lastAttempt!.error).toMatch(/^held back at runtime until 2026-03-02T05:00:00.000Z \(health.retryAfter\)/);
    expect(st3.runtimeFailures).toBe(1);
    // r4, 25 h after the hold-back: tried once (2 activations), still failing → held again, the clock restarts.
    const r4 = await run(cfg, side, 'r4', [], at(26));
    expect(r4.result).toBe('success');
    expect(r4.holdBack).toMatchObject({ activations: 2, healthy: true, culprits: { syn: [synUnit] } });
    expect(s.activations.slice(4)).toEqual(['/top/hm-r4_syn-r4', '/top/hm-r4_syn-r1']);
    const st4 = (await createStateStore(cfg.stateDir).readState({ repair: false })).value.desyncs.syn!;
    expect(st4.heldBack).toMatchObject({ stage: 'health', since: new Date(t0 + 3600_000).toISOString(), retryAt: new Date(t0 + 50 * 3600_000).toISOString() });
    expect(st4.runtimeFailures).toBe(2);
    // Fixed upstream, but the retry is not due: still held (1 activation).
    synFixed = true;
    await run(cfg, side, 'r5', [], at(27));
    expect(s.activations.slice(6)).toEqual(['/top/hm-r5_syn-r1']);
    // Due: tried, healthy → follows the channel, the hold is cleared.
    const r6 = await run(cfg, side, 'r6', [], at(51));
    expect(r6.holdBack).toBeUndefined();
    expect(s.activations.slice(7)).toEqual(['/top/hm-r6_syn-r6']);
    const st6 = (await createStateStore(cfg.stateDir).readState({ repair: false })).value;
    expect(st6.desyncs.syn).toMatchObject({ heldBack: null, runtimeFailures: 2 });
    expect(st6.committed.pins.syn).toMatchObject({ revision: 'r6', desyncAge: 0 });
  });
});
