#!/usr/bin/env node
// Benchmark: what a runtime hold-back (step 8b) costs beside a plain run, measured side by
// side with real Nix (runUpgrade on the demo host, the default "switch" activation).
//
//   node bench/holdback.mjs [--desyncs 4] [--trials 3] [--eval-seconds 0.5] [--json FILE]
//
// Each trial makes two fresh hosts with the same N desyncs (desync d<i> builds pkg<i> and
// declares units = ["pkg<i>.service"]); one unmeasured run on a good revision pins them all.
// Then each host gets a fresh revision of the same shape and one measured run (their order
// alternates per trial, so machine load hits both alike):
//   plain:     everything builds and runs: 1 gate evaluation, 1 system build, 1 activation.
//   hold-back: pkg0 builds but pkg0.service fails once activated: the gate fails, d0 is held
//              back, the loop rolls back, builds and activates again (healthy).
// Counted: Nix evaluations, switch-to-configuration calls (test = activation or rollback,
// boot = the boot entry), wall time and the stage times the run reports.
import { mkdtemp, readFile, rm, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { calibrate, countEvaluations, timedRunner } from './loop-common.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const D = (p) => import(join(ROOT, 'dist/src', p));
const { createDemoHost, FAKE_REBUILD } = await D('demo/host.js');
const { writeFakeNixpkgs } = await D('demo/fake-nixpkgs.js');
const { runUpgrade } = await D('upgrade/run.js');
const { createCliNix } = await D('nix/cli-adapter.js');
const { createStateStore } = await D('state/store.js');
const { runCommand } = await D('util/exec.js');
const { parseConfig } = await D('config/load.js');
const { createLogger } = await D('util/log.js');

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const N = Number(args.desyncs ?? 4);
const TRIALS = Number(args.trials ?? 3);
const EVAL_SECONDS = Number(args['eval-seconds'] ?? 0.5);
process.env.NIX_CONFIG ??= 'sandbox = false\nsubstituters =';
const env = process.env;
const log = (s) => process.stderr.write(`holdback: ${s}\n`);

async function makeHost(dir, evalCost) {
  const desyncs = {};
  const systemPackages = {};
  for (let i = 0; i < N; i++) {
    desyncs[`d${i}`] = { requireBuilds: [`pkg${i}`], maxLagRebuilds: null, units: [`pkg${i}.service`] };
    systemPackages[`d${i}`] = `pkg${i}`;
  }
  const host = await createDemoHost(dir, { revisions: [{ label: 'good', evalCost, extraPackages: N }], desyncs, systemPackages });
  const config = parseConfig(host.config);
  const hostEnv = { ...env, PATH: host.path };
  const activations = async () => (await readFile(join(host.runDir, 'activations'), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
  const once = async () => {
    const { run, calls } = timedRunner(runCommand);
    const before = (await activations()).length;
    const deps = { config, nix: createCliNix({ env: hostEnv, run }), run, store: createStateStore(config.stateDir), logger: createLogger({ write: () => undefined }), env: hostEnv };
    const t = process.hrtime.bigint();
    const res = await runUpgrade(deps);
    const wallMs = Number(process.hrtime.bigint() - t) / 1e6;
    const acts = (await activations()).slice(before).map((l) => l.split(' ')[0]);
    return { res, calls, wallMs, tests: acts.filter((a) => a === 'test').length, boots: acts.filter((a) => a === 'boot').length };
  };
  const first = await once(); // pins every desync (not measured)
  if (first.res.exitCode !== 0) throw new Error(`setup run failed: ${JSON.stringify(first.res.error)}`);
  return { host, once };
}

const tmp = await mkdtemp(join(tmpdir(), 'nixos-desync-bench-holdback-'));
const results = { started: new Date().toISOString(), nproc: cpus().length, loadavgStart: loadavg(), desyncs: N, trials: [] };
try {
  Object.assign(results, await calibrate(tmp, EVAL_SECONDS, writeFakeNixpkgs, env));
  log(`evalCost ${results.evalCost}: one import evaluates in ${results.evalSeconds.toFixed(2)} s; ${N} desyncs`);
  for (let t = 0; t < TRIALS; t++) {
    const trial = { load1: loadavg()[0] };
    const sides = {};
    for (const side of ['plain', 'holdback']) {
      const h = await makeHost(join(tmp, `${side}-${t}`), results.evalCost);
      const label = `cand-${t}-${side}`;
      await writeFakeNixpkgs(join(h.host.dir, 'revs', label), { label, evalCost: results.evalCost, extraPackages: N, ...(side === 'holdback' ? { crashes: ['pkg0'] } : {}) });
      await h.host.useRevision(label);
      sides[side] = h;
    }
    for (const side of t % 2 === 0 ? ['plain', 'holdback'] : ['holdback', 'plain']) {
      const r = await sides[side].once();
      // Both upgrade the host; only the hold-back side holds a desync back.
      if (r.res.result !== 'success' || (side === 'holdback') !== (r.res.holdBack?.healthy === true)) {
        throw new Error(`${side}: unexpected result ${r.res.result} ${JSON.stringify(r.res.holdBack ?? null)} ${JSON.stringify(r.res.error ?? null)}`);
      }
      trial[side] = { wallMs: r.wallMs, evaluations: countEvaluations(r.calls, FAKE_REBUILD), tests: r.tests, boots: r.boots, stages: r.res.stages, holdBack: r.res.holdBack ?? null };
    }
    trial.extraMs = trial.holdback.wallMs - trial.plain.wallMs;
    const p = trial.plain;
    const b = trial.holdback;
    log(`trial ${t + 1}/${TRIALS}: plain ${(p.wallMs / 1000).toFixed(2)} s (${p.evaluations.gate}+${p.evaluations.system} evals, ${p.tests} test + ${p.boots} boot) · hold-back ${(b.wallMs / 1000).toFixed(2)} s (${b.evaluations.gate}+${b.evaluations.system} evals, ${b.tests} test + ${b.boots} boot) · +${(trial.extraMs / 1000).toFixed(2)} s · load ${trial.load1.toFixed(2)}`);
    results.trials.push(trial);
  }
} finally {
  results.loadavgEnd = loadavg();
  await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
}

if (args.json) {
  await mkdir(dirname(args.json), { recursive: true });
  await writeFile(args.json, JSON.stringify(results, null, 2) + '\n');
}
const med = (xs) => [...xs].sort((a, c) => a - c)[Math.floor((xs.length - 1) / 2)];
const pad = (s, w) => String(s).padStart(w);
const sec = (ms) => (ms / 1000).toFixed(2);
const stage = (side, name) => sec(med(results.trials.map((x) => (x[side].stages[name] ?? 0) * 1000)));
console.log(`\nRuntime hold-back vs plain run: real Nix, ${N} desyncs, fake nixpkgs evalCost ${results.evalCost} (one import ≈ ${results.evalSeconds.toFixed(2)} s); median of ${TRIALS} interleaved trial(s); load ${results.loadavgStart[0].toFixed(2)} → ${results.loadavgEnd[0].toFixed(2)}`);
console.log(`${pad('run', 9)} | ${pad('evals (gate+system)', 19)} | ${pad('switch-to-configuration', 23)} | ${pad('wall s', 6)} | ${pad('gate s', 6)} ${pad('system_build s', 14)} ${pad('activate s', 10)} ${pad('health s', 8)}`);
for (const side of ['plain', 'holdback']) {
  const x = results.trials[0][side];
  console.log(`${pad(side === 'plain' ? 'plain' : 'hold-back', 9)} | ${pad(`${x.evaluations.total} (${x.evaluations.gate}+${x.evaluations.system})`, 19)} | ${pad(`${x.tests} test + ${x.boots} boot`, 23)} | ${pad(sec(med(results.trials.map((r) => r[side].wallMs))), 6)} | ${pad(stage(side, 'gate'), 6)} ${pad(stage(side, 'system_build'), 14)} ${pad(stage(side, 'activate'), 10)} ${pad(stage(side, 'health'), 8)}`);
}
const extra = med(results.trials.map((x) => x.extraMs));
const plainMs = med(results.trials.map((x) => x.plain.wallMs));
console.log(`hold-back extra: +${sec(extra)} s (+${((extra / plainMs) * 100).toFixed(0)} %) for one more system evaluation + build, one rollback and one more activation and health gate (health.settle 0 s here; a host adds its settle time twice)`);
