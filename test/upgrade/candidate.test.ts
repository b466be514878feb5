// Candidate identity and the rejected set (DESIGN.md "The run", step 4; issue 18 items 5, 6):
// a candidate is its tree (store path), its revision only a label; rejections are a bounded
// set that a commit of another candidate does not clear.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Candidate, GateRequest } from '../../src/nix/adapter.js';
import { createStateStore } from '../../src/state/store.js';
import type { RunOptions } from '../../src/util/exec.js';
import { fail, gateReport, ok } from '../helpers/fake-nix.js';
import { answerSwitch, harness, leaveResult, makeConfig, type TestConfig } from '../helpers/upgrade-harness.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-candidate-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A nixpkgs tree as the channel adapter reports it: `label` names the tree, `revision` is what its files say. */
function tree(label: string, revision = '25.11'): Candidate {
  const hash = (label + 'x'.repeat(32)).slice(0, 32).replace(/[^0-9a-z]/g, 'a');
  const path = `/nix/store/${hash}-nixpkgs-${label}`;
  return { path, storePath: path, revision, id: path };
}

/** One desync `hm` (no checks) with `maxLagRebuilds`; a running system to roll back to. */
async function setup(maxLagRebuilds = 14): Promise<TestConfig> {
  const config = makeConfig(join(dir, 'state'), { desyncs: { hm: { requireBuilds: ['home-manager'], maxLagRebuilds } } });
  await mkdir(join(dir, 'store', 'previous'), { recursive: true });
  await mkdir(config.runDir, { recursive: true });
  await symlink(join(dir, 'store', 'previous'), join(config.runDir, 'current-system'));
  return config;
}

interface Step { failing?: string[]; activateFails?: boolean; systemFails?: boolean; retry?: boolean }

/** One run on candidate `c`, every call released, as far as the loop goes. */
async function run(config: TestConfig, c: Candidate, o: Step = {}) {
  const h = harness(config);
  const p = h.start({ retry: o.retry });
  const ended = p.then(() => null);
  (await h.q.next('updateChannel')).resolve(undefined);
  (await h.q.next('resolveCandidate')).resolve(c);
  const gate = await Promise.race([ended, h.q.next('buildGates')]);
  if (gate === null) return { res: await p, h, gated: false };
  gate.resolve(gateReport(gate.args[0] as GateRequest[], o.failing));
  const build = await Promise.race([ended, h.q.next('run')]);
  if (build !== null) {
    const argv = build.args[0] as string[];
    if (!o.systemFails) await leaveResult(build.args[1] as RunOptions, config.stateDir);
    build.resolve(o.systemFails ? fail(argv, 'error: system build failed', 100) : ok(argv));
    const act = await Promise.race([ended, h.q.next('run')]);
    if (act !== null) {
      if (o.activateFails) act.resolve(fail(act.args[0] as string[]));
      else await answerSwitch(act, config.stateDir);
      // A rollback activates the previous system again (and is confirmed: it switches to it).
      const rollback = await Promise.race([ended, h.q.next('run')]);
      if (rollback !== null) await answerSwitch(rollback, config.stateDir);
    }
  }
  return { res: await p, h, gated: true };
}

const rejectedOf = async (config: TestConfig) => (await createStateStore(config.stateDir).readState({ repair: false })).value.rejected;

describe('candidate identity: the tree, not its revision label', () => {
  it('maxLagRebuilds 0: a failing desync on another tree with the same .version breaches (was: passed silently as "the pin already is the candidate")', async () => {
    const config = await setup(0);
    expect((await run(config, tree('a'))).res.exitCode).toBe(0);
    const { res, h } = await run(config, tree('b'), { failing: ['hm'] });
    expect(res.result).toBe('breach');
    expect(res.exitCode).toBe(1);
    expect(res.desyncs).toEqual([expect.objectContaining({ name: 'hm', result: 'failed', breached: true, lagRebuilds: 0 })]); // onBreach "fail": nothing rebuilt, the lag stays
    expect(h.lines.join('')).toMatch(/BREACH: lag 0 ≥ maxLagRebuilds 0/);
  });

  it('one rejected tree does not block a later tree with the same revision label', async () => {
    const config = await setup();
    expect((await run(config, tree('a'))).res.exitCode).toBe(0);
    const r2 = await run(config, tree('b'), { activateFails: true });
    expect(r2.res.result).toBe('rolled_back');
    expect(await rejectedOf(config)).toEqual([expect.objectContaining({ id: tree('b').id, revision: '25.11', path: tree('b').path })]);
    const r3 = await run(config, tree('c'));
    expect(r3.gated).toBe(true);
    expect(r3.res.error).toBeNull();
    expect(r3.res).toMatchObject({ result: 'success', exitCode: 0, candidate: { path: tree('c').path } });
  });
});

describe('rejected candidates: a bounded set, not cleared by a commit', () => {
  it('r2 rejected, r3 rejected, back to r2: refused at once (exit 1, saying so) without --retry; a later, different candidate is tried', async () => {
    const config = await setup();
    expect((await run(config, tree('r1', 'rev1'))).res.exitCode).toBe(0);
    expect((await run(config, tree('r2', 'rev2'), { activateFails: true })).res.result).toBe('rolled_back');
    expect((await run(config, tree('r3', 'rev3'), { activateFails: true })).res.result).toBe('rolled_back');
    const back = await run(config, tree('r2', 'rev2'));
    expect(back.gated).toBe(false);
    expect(back.res).toMatchObject({ exitCode: 1, result: 'failure', error: { code: 'E_REJECTED' } });
    expect(back.res.error!.message).toMatch(/candidate rev2 \(\/nix\/store\/\S+-nixpkgs-r2\) was rejected: run \S+ rolled it back .*\(activation failed\).*--retry/);
    expect((await rejectedOf(config)).map((e) => e.revision)).toEqual(['rev2', 'rev3']);
    const r4 = await run(config, tree('r4', 'rev4'));
    expect(r4.res).toMatchObject({ exitCode: 0, result: 'success' });
  });

  it('a commit of another candidate keeps the rejections; --retry tries one, and a healthy retry removes only it', async () => {
    const config = await setup();
    expect((await run(config, tree('r1', 'rev1'))).res.exitCode).toBe(0);
    expect((await run(config, tree('r2', 'rev2'), { activateFails: true })).res.result).toBe('rolled_back');
    expect((await run(config, tree('r3', 'rev3'), { activateFails: true })).res.result).toBe('rolled_back');
    expect((await run(config, tree('r4', 'rev4'))).res.exitCode).toBe(0);
    expect((await rejectedOf(config)).map((e) => e.revision)).toEqual(['rev2', 'rev3']);
    expect((await run(config, tree('r2', 'rev2'))).res.error?.code).toBe('E_REJECTED');
    const retried = await run(config, tree('r2', 'rev2'), { retry: true });
    expect(retried.h.lines.join('')).toMatch(/trying it again \(--retry\)/);
    expect(retried.res).toMatchObject({ exitCode: 0, result: 'success' });
    expect((await rejectedOf(config)).map((e) => e.revision)).toEqual(['rev3']);
  });
});
