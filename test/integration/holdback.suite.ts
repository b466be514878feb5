// Issue 19 with real Nix and the real CLI on the demo host: a fake nixpkgs whose
// matrix-synapse.service fails once activated on revisions `crash` and `crash2`, so whether the
// activated system is healthy depends on which revision of the `synapse` desync it contains.
// Declared (units claim it) → held back, host upgraded; undeclared or attribute off → rejected
// whole; bisect among 3 desyncs; retryAfter; kill -9 between the two activations.
// Activations are counted from the fake switch-to-configuration's log (<runDir>/activations).
// Imported by real-nix.test.ts (one file for the store).
import { describe, it, expect } from 'vitest';
import { readFile, realpath, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { createDemoHost, type DemoHost } from '../../src/demo/host.js';
import { gitRevisionOf, type FakeRevision } from '../../src/demo/fake-nixpkgs.js';
import { loadConfig } from '../../src/config/load.js';
import { NIX_ENV, runCli } from '../helpers/cli.js';
import { sample, startTestExporter } from '../fixtures/exporter/start.js';

const env = { ...process.env, ...NIX_ENV };

const HOLDBACK_REVS: FakeRevision[] = [
  { label: 'rev1' },
  { label: 'crash', crashes: ['matrix-synapse'] }, // builds; matrix-synapse.service fails once activated
  { label: 'crash2', crashes: ['matrix-synapse'] }, // a newer channel, still broken at runtime
  { label: 'fixed' },
];

const PACKAGES: Record<string, string> = { browser: 'firefox', 'home-manager': 'home-manager', synapse: 'matrix-synapse' };

async function host(root: string, name: string, desyncs: Record<string, Record<string, unknown>>, health: Record<string, unknown> = {}): Promise<DemoHost> {
  return createDemoHost(join(root, name), {
    revisions: HOLDBACK_REVS,
    desyncs,
    systemPackages: Object.fromEntries(Object.keys(desyncs).map((d) => [d, PACKAGES[d]!])),
    extraConfig: { health: { settle: '0s', ...health } },
  });
}

/** home-manager declares nothing; synapse declares its unit (the failure is claimed). */
const DECLARED = { 'home-manager': { requireBuilds: ['home-manager'] }, synapse: { requireBuilds: ['matrix-synapse'], units: ['matrix-synapse.service'] } };

async function upgrade(h: DemoHost, rev: string, ...flags: string[]) {
  await h.useRevision(rev);
  const r = await runCli(['upgrade', '--config', h.configPath, '--json', ...flags]);
  return { ...r, res: r.stdout ? JSON.parse(r.stdout) : null };
}

const current = (h: DemoHost): Promise<string> => realpath(join(h.runDir, 'current-system'));

/** `switch-to-configuration test` calls so far: the candidate's activations and the rollbacks to `verified`. */
async function activationsSince(h: DemoHost, from: number, verified: string): Promise<{ candidate: string[]; rollbacks: number; total: number }> {
  const lines = (await readFile(join(h.runDir, 'activations'), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
  const tests = lines.slice(from).filter((l) => l.startsWith('test '));
  return { candidate: tests.filter((l) => l !== `test ${verified}`).map((l) => l.slice(5)), rollbacks: tests.filter((l) => l === `test ${verified}`).length, total: lines.length };
}

/** What the running system contains: `<desync package>-<revision label>` per package. */
async function runningPackages(h: DemoHost): Promise<string[]> {
  const pkgs = (await readFile(join(await current(h), 'packages'), 'utf8')).split('\n').filter((l) => l !== '');
  return pkgs.map((p) => p.replace(/^\/nix\/store\/[a-z0-9]+-/, '')).filter((p) => !p.startsWith('hello-')).sort();
}

async function cli(h: DemoHost, cmd: string) {
  const r = await runCli([cmd, '--config', h.configPath, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

function pinOf(h: DemoHost, name: string): { desyncAge: number; revision: string } {
  return JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', join(h.stateDir, 'pins', `${name}.nix`)], { env, encoding: 'utf8' })) as never;
}

/** Lets "a day" pass for the runtime hold-back of `name`: its retry time moves into the past. */
async function retryDue(h: DemoHost, name: string): Promise<void> {
  const file = join(h.stateDir, 'state.json');
  const st = JSON.parse(await readFile(file, 'utf8'));
  st.desyncs[name].heldBack.retryAt = new Date(Date.now() - 1000).toISOString();
  await writeFile(file, JSON.stringify(st, null, 2));
}

/** A first healthy run at rev1: returns the verified system and the activation log's length. */
async function start(h: DemoHost): Promise<{ verified: string; from: number }> {
  const r = await upgrade(h, 'rev1');
  expect(r.code, r.stderr).toBe(0);
  return { verified: await current(h), from: (await activationsSince(h, 0, '')).total };
}

export function defineHoldbackSuite(root: () => string): void {
  describe('runtime hold-back with real Nix (issue 19)', () => {
    it('declared: synapse\'s unit fails at runtime → synapse held back at rev1, the host upgraded to crash (2 activations, 1 rollback, 3 evaluations)', async () => {
      const h = await host(root(), 'hb-declared', DECLARED);
      const { verified, from } = await start(h);
      const r = await upgrade(h, 'crash');
      expect(r.code, r.stderr).toBe(0);
      expect(r.res).toMatchObject({ result: 'success', evaluations: 3, holdBack: { activations: 2, systemBuilds: 2, healthy: true } });
      expect(Object.keys(r.res.holdBack.culprits)).toEqual(['synapse']);
      expect(r.stderr + r.stdout).toMatch(/holdback +synapse: held back at its pin — unit matrix-synapse\.service/);
      const acts = await activationsSince(h, from, verified);
      expect(acts.candidate).toHaveLength(2);
      expect(acts.rollbacks).toBe(1);
      expect(await current(h)).toBe(acts.candidate[1]);
      expect(await runningPackages(h)).toEqual(['home-manager-crash', 'matrix-synapse-rev1']);
      expect(pinOf(h, 'synapse')).toMatchObject({ desyncAge: 1, revision: gitRevisionOf('rev1') });
      expect(pinOf(h, 'home-manager')).toMatchObject({ desyncAge: 0, revision: gitRevisionOf('crash') });
      const st = await cli(h, 'status');
      const syn = st.desyncs.find((d: { name: string }) => d.name === 'synapse');
      expect(syn.heldBack).toMatchObject({ stage: 'health', reason: expect.stringContaining('unit matrix-synapse.service') });
      expect(st.desyncs.find((d: { name: string }) => d.name === 'home-manager').heldBack).toBeNull();
      expect(st.rejected).toEqual([]);
      const gens = await cli(h, 'generations');
      expect(gens[0].sources.desyncs.synapse).toMatchObject({ desyncAge: 1, heldBack: { stage: 'health' } });
      const exp = await startTestExporter(await loadConfig(h.configPath));
      try {
        const text = await (await fetch(`${exp.url}metrics`)).text();
        expect(sample(text, 'nixos_desync_desync_held_back{desync="synapse",stage="health"}')).toBe(1);
        expect(sample(text, 'nixos_desync_desync_held_back{desync="home-manager",stage="none"}')).toBe(0);
        expect(sample(text, 'nixos_desync_desync_runtime_failures_total{desync="synapse"}')).toBe(1);
        expect(sample(text, 'nixos_desync_lag_rebuilds{desync="synapse"}')).toBe(1);
      } finally {
        await exp.close();
      }
    });

    it.each([
      ['undeclared (no desync claims the unit)', { 'home-manager': { requireBuilds: ['home-manager'] }, synapse: { requireBuilds: ['matrix-synapse'] } }, {}],
      ['health.attribute false', DECLARED, { attribute: false }],
    ])('%s: rolled back and rejected whole (1 activation, 1 rollback)', async (_what, desyncs, health) => {
      const h = await host(root(), `hb-whole-${Object.keys(health).length}`, desyncs, health);
      const { verified, from } = await start(h);
      const r = await upgrade(h, 'crash');
      expect(r.code).toBe(1);
      expect(r.res).toMatchObject({ result: 'rolled_back', evaluations: 2 });
      expect(r.res.holdBack).toBeUndefined();
      const acts = await activationsSince(h, from, verified);
      expect(acts.candidate).toHaveLength(1);
      expect(acts.rollbacks).toBe(1);
      expect(await current(h)).toBe(verified);
      expect(pinOf(h, 'synapse')).toMatchObject({ desyncAge: 0, revision: gitRevisionOf('rev1') });
      const st = await cli(h, 'status');
      expect(st.rejected.map((x: { revision: string }) => x.revision)).toEqual([gitRevisionOf('crash')]);
      expect(st.desyncs.every((d: { heldBack: unknown }) => d.heldBack === null)).toBe(true);
    });

    it('bisect: 3 desyncs moved, none declares anything; the culprit (synapse) is found in 2 extra activations and held back', async () => {
      const desyncs = { browser: { requireBuilds: ['firefox'] }, 'home-manager': { requireBuilds: ['home-manager'] }, synapse: { requireBuilds: ['matrix-synapse'] } };
      const h = await host(root(), 'hb-bisect', desyncs, { bisect: true });
      const { verified, from } = await start(h);
      const r = await upgrade(h, 'crash');
      expect(r.code, r.stderr).toBe(0);
      expect(r.res.holdBack).toMatchObject({
        activations: 3, systemBuilds: 3, healthy: true,
        bisect: { suspects: ['browser', 'home-manager', 'synapse'], culprit: 'synapse', trials: [
          { held: ['browser', 'home-manager'], healthy: false, failures: ['unit matrix-synapse.service'] },
          { held: ['synapse'], healthy: true, failures: [] },
        ] },
      });
      expect(r.res.evaluations).toBe(4);
      expect(r.stdout + r.stderr).toMatch(/bisect +trial 1: holding back browser, home-manager → unhealthy \(unit matrix-synapse\.service/);
      const acts = await activationsSince(h, from, verified);
      expect(acts.candidate).toHaveLength(3); // the candidate + 2 extra
      expect(acts.rollbacks).toBe(2);
      expect(await runningPackages(h)).toEqual(['firefox-crash', 'home-manager-crash', 'matrix-synapse-rev1']);
      const history = JSON.parse(await readFile(join(h.stateDir, 'history.json'), 'utf8'));
      expect(history.runs.at(-1).holdBack.bisect.trials).toHaveLength(2);
    });

    it('retryAfter: not activated at a newer revision before it passed; then tried once, held again while broken, followed once fixed', async () => {
      const h = await host(root(), 'hb-retry', DECLARED, { retryAfter: '24h' });
      let { verified, from: mark } = await start(h);
      // Each run's activations, the rollbacks being those of the system verified before it.
      const acts = async () => {
        const a = await activationsSince(h, mark, verified);
        [mark, verified] = [a.total, await current(h)];
        return a;
      };
      expect((await upgrade(h, 'crash')).res.holdBack).toMatchObject({ activations: 2 });
      await acts();
      // crash2 at once: synapse (gate passes) stays on rev1 — 1 activation, no rollback.
      const r2 = await upgrade(h, 'crash2');
      expect(r2.code, r2.stderr).toBe(0);
      expect(r2.res.holdBack).toBeUndefined();
      expect(r2.res.desyncs.find((d: { name: string }) => d.name === 'synapse')).toMatchObject({ result: 'failed', stage: 'health', lagRebuilds: 2 });
      expect(await acts()).toMatchObject({ candidate: [expect.any(String)], rollbacks: 0 });
      expect(await runningPackages(h)).toEqual(['home-manager-crash2', 'matrix-synapse-rev1']);
      // A day later: tried once at crash2, still broken → held again (2 activations), counted again.
      await retryDue(h, 'synapse');
      const r3 = await upgrade(h, 'crash2');
      expect(r3.res.holdBack).toMatchObject({ activations: 2, healthy: true });
      // The try, the rollback, and the held system — the very toplevel that ran before (same sources).
      const before = verified;
      expect(await acts()).toMatchObject({ candidate: [expect.any(String)], rollbacks: 2 });
      expect(await current(h)).toBe(before);
      const held = (await cli(h, 'status')).desyncs.find((d: { name: string }) => d.name === 'synapse');
      expect(held).toMatchObject({ runtimeFailures: 2, heldBack: { stage: 'health' } });
      expect(Date.parse(held.heldBack.retryAt)).toBeGreaterThan(Date.now() + 23 * 3600_000);
      // Fixed upstream, but not due: still held (1 activation). Due: followed, the hold cleared.
      await upgrade(h, 'fixed');
      expect((await acts()).candidate).toHaveLength(1);
      expect(pinOf(h, 'synapse').revision).toBe(gitRevisionOf('rev1'));
      await retryDue(h, 'synapse');
      const r5 = await upgrade(h, 'fixed');
      expect(r5.res).toMatchObject({ result: 'success' });
      expect(r5.res.holdBack).toBeUndefined();
      expect(await acts()).toMatchObject({ rollbacks: 0, candidate: [expect.any(String)] });
      expect(await runningPackages(h)).toEqual(['home-manager-fixed', 'matrix-synapse-fixed']);
      expect((await cli(h, 'status')).desyncs.find((d: { name: string }) => d.name === 'synapse')).toMatchObject({ heldBack: null, lagRebuilds: 0 });
    });

    it('kill -9 between the two activations (failpoint holdback-after-rollback): recover leaves the verified system; the next run holds back again', async () => {
      const h = await host(root(), 'hb-kill', DECLARED);
      const { verified } = await start(h);
      const pinsBefore = await readFile(join(h.stateDir, 'pins', 'synapse.nix'), 'utf8');
      await h.useRevision('crash');
      const killed = await runCli(['upgrade', '--config', h.configPath], { NIXOS_DESYNC_FAILPOINT: 'holdback-after-rollback' });
      expect(killed.signal).toBe('SIGKILL');
      expect(await current(h)).toBe(verified);
      const rec = await runCli(['recover', '--config', h.configPath]);
      expect(rec.code, rec.stdout + rec.stderr).toBe(0);
      expect(await current(h)).toBe(verified);
      const st = await cli(h, 'status');
      expect(st.system.verified).toBe(true);
      expect(st.rejected).toEqual([]);
      expect(await readFile(join(h.stateDir, 'pins', 'synapse.nix'), 'utf8')).toBe(pinsBefore);
      expect(pinOf(h, 'home-manager').revision).toBe(gitRevisionOf('rev1'));
      // A crash is not a verdict: the next run tries crash again and holds synapse back.
      const r = await upgrade(h, 'crash');
      expect(r.code, r.stderr).toBe(0);
      expect(r.res.holdBack).toMatchObject({ activations: 2, healthy: true });
      expect(await runningPackages(h)).toEqual(['home-manager-crash', 'matrix-synapse-rev1']);
    });
  });
}
