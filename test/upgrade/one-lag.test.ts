// One lag number everywhere (issue 22): for every way a run can end, the run's output (its last
// word on the desync), its result (`upgrade --json`), the breach reason, `status`, `status
// --json` and the exporter's nixos_desync_lag_rebuilds say the same lag. The loop runs in-process
// with the fake Nix; status and the real exporter read the state directory it leaves.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectStatus, renderStatus } from '../../src/cli/status.js';
import type { RunOptions } from '../../src/util/exec.js';
import { fail, ok } from '../helpers/fake-nix.js';
import { answerSwitch, drive, harness, leaveResult, makeConfig, type TestConfig } from '../helpers/upgrade-harness.js';
import { sample, startTestExporter } from '../fixtures/exporter/start.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-onelag-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

type End = 'healthy' | 'stops' | 'system build fails' | 'rolled back';

/** One run on `rev` with `failing` desyncs failing their gate, ending as `end`. */
async function run(config: TestConfig, rev: string, failing: string[], end: End) {
  const h = harness(config);
  const p = h.start();
  await drive(h, rev, { failing });
  if (end !== 'stops') {
    const b = await h.q.next('run');
    if (end === 'system build fails') {
      b.resolve(fail(['sys-build'], 'error: system build failed', 100));
    } else {
      await leaveResult(b.args[1] as RunOptions, config.stateDir);
      b.resolve(ok(['sys-build']));
      await answerSwitch(await h.q.next('run'), config.stateDir);
      const check = await h.q.next('run');
      if (end === 'healthy') {
        check.resolve(ok(['hc']));
      } else {
        check.resolve(fail(['hc'], 'unhealthy'));
        await answerSwitch(await h.q.next('run'), config.stateDir); // the rollback
      }
    }
  }
  return { res: await p, out: h.lines.join('') };
}

// hm's budget is 2 rebuilds; `before` runs with hm failing (healthy, committed) come first.
const CASES: Array<{ name: string; onBreach: 'fail' | 'continue'; before: number; end: End; result: string; lag: number; breach: string | null }> = [
  { name: 'success: the run counts itself', onBreach: 'fail', before: 1, end: 'healthy', result: 'success', lag: 2, breach: null },
  { name: 'breach, onBreach "continue": rebuilt with the stale pin', onBreach: 'continue', before: 2, end: 'healthy', result: 'breach', lag: 3, breach: 'lag 3 > maxLagRebuilds 2' },
  { name: 'breach, onBreach "fail": stops before the rebuild', onBreach: 'fail', before: 2, end: 'stops', result: 'breach', lag: 2, breach: 'lag 2 ≥ maxLagRebuilds 2' },
  { name: 'the system build fails after the pin line', onBreach: 'fail', before: 1, end: 'system build fails', result: 'failure', lag: 1, breach: null },
  { name: 'the health gate fails: rollback', onBreach: 'fail', before: 1, end: 'rolled back', result: 'rolled_back', lag: 1, breach: null },
  { name: 'breach, onBreach "continue", then rollback', onBreach: 'continue', before: 2, end: 'rolled back', result: 'rolled_back', lag: 2, breach: 'lag 2 ≥ maxLagRebuilds 2' },
];

describe('one lag number in the output, the result, status, status --json and the metrics', () => {
  it.each(CASES)('$name', async (c) => {
    const config = makeConfig(join(dir, 'state'), { onBreach: c.onBreach, health: { settle: '0s', failedUnits: false, checks: [['hc']] } });
    await run(config, 'rev1', [], 'healthy');
    for (let i = 0; i < c.before; i++) expect((await run(config, `rev${i + 2}`, ['hm'], 'healthy')).res.result).toBe('success');
    const { res, out } = await run(config, `rev${c.before + 2}`, ['hm'], c.end);
    expect(res.result).toBe(c.result);

    // The output: its last word on hm's lag, and every breach wording in it.
    const said = [...out.matchAll(/pin +hm: .*?lag (\d+)\//g)].map((m) => Number(m[1]));
    expect(said.length).toBeGreaterThan(0);
    expect(said.at(-1)).toBe(c.lag);
    const outcome = res.desyncs.find((d) => d.name === 'hm')!;
    expect(outcome.lagRebuilds).toBe(c.lag);
    expect(outcome.breached).toBe(c.breach !== null);

    const doc = await collectStatus(config);
    const hm = doc.desyncs.find((d) => d.name === 'hm')!;
    expect(hm).toMatchObject({ lagRebuilds: c.lag, breached: c.breach !== null, breachReason: c.breach });
    expect(renderStatus(doc)).toMatch(new RegExp(`^hm +rev1 +${c.lag}/2 `, 'm'));
    if (c.breach !== null) {
      expect(renderStatus(doc)).toContain(`hm: breach: ${c.breach}`);
      if (c.end === 'stops') expect(res.error?.message).toContain(c.breach);
    }

    const exp = await startTestExporter(config);
    try {
      const text = await exp.exporter.metrics();
      expect(sample(text, 'nixos_desync_lag_rebuilds{desync="hm"}')).toBe(c.lag);
      expect(sample(text, 'nixos_desync_breached{desync="hm"}')).toBe(c.breach !== null ? 1 : 0);
    } finally {
      await exp.close();
    }
  });
});
