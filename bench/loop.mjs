#!/usr/bin/env node
// Benchmark: one run of the upgrade loop (runUpgrade, real Nix) against the desync
// proposal's own pattern, side by side, as the number of desyncs grows.
//
//   node bench/loop.mjs [--sizes 1,4,16] [--trials 2] [--eval-seconds 0.5] [--json FILE]
//
// Needs real Nix and a built dist/ (bench/run.sh does both). Every trial uses a fresh
// fake nixpkgs revision (so both sides build cold), in which pkg0 fails to build: one
// failing desync per run, the others follow the channel. Baseline and candidate runs are
// interleaved (their order alternates per trial) so machine load hits both alike.
//
// Baseline ("proposal pattern", what nixpkgs PR 385143's auto-upgrade script does):
//   nix-store --add CANDIDATE
//   for each desync:  nix-build CANDIDATE -A <its requireBuilds> --no-out-link   (1 evaluation each)
//   for a failing one: nix-build OLD_PIN -A <its requireBuilds> --no-out-link    (a 2nd evaluation)
//   write <pins>/<name>.nix, then `nixos-rebuild switch`                          (1 system evaluation)
// Candidate ("ours"): runUpgrade() with the demo host's config and the DEFAULT activation:
// system.build = nixos-rebuild build (the fake rebuild, real nix-build) leaves ./result;
// system.activate = "switch" activates exactly that toplevel (switch-to-configuration test),
// runs the health gate (failed units via the host's stand-in systemctl; health.settle 0s, as
// the proposal's pattern waits for nothing either), then nix-env --set + switch-to-configuration
// boot. "legacy": the same with the argv system.activate of earlier versions,
// ["nixos-rebuild", "switch"] (a second evaluation of the whole configuration).
//
// Counted: Nix evaluations (each nix-instantiate / nix-build / fake nixos-rebuild call that
// evaluates), wall time, and the loop's own overhead = run wall time − Σ wall time of the
// commands it ran (every Runner call is timed where it is made).
import { mkdtemp, rm, mkdir, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { calibrate as calibrateEval, countEvaluations as countEvaluationsOf, timedRunner as timedRunnerOf } from './loop-common.mjs';
import { realpathSync } from 'node:fs';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

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
const { GATE_EXPR } = await D('nix/gate-expr.js');

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const SIZES = (args.sizes ?? '1,4,16').split(',').map(Number);
const TRIALS = Number(args.trials ?? 2);
const EVAL_SECONDS = Number(args['eval-seconds'] ?? 0.5);
process.env.NIX_CONFIG ??= 'sandbox = false\nsubstituters =';
const env = process.env;
const log = (s) => process.stderr.write(`loop: ${s}\n`);

// ---------------------------------------------------------------- calibration, timed runner
const calibrate = (dir) => calibrateEval(dir, EVAL_SECONDS, writeFakeNixpkgs, env);
const timedRunner = () => timedRunnerOf(runCommand);
// The default activation evaluates nothing (it activates the result of system.build).
const countEvaluations = (calls) => countEvaluationsOf(calls, FAKE_REBUILD);

// ---------------------------------------------------------------- hosts
function desyncSetup(n) {
  const desyncs = {};
  const systemPackages = {};
  for (let i = 0; i < n; i++) {
    desyncs[`d${i}`] = { requireBuilds: [`pkg${i}`], maxLagRebuilds: null };
    systemPackages[`d${i}`] = `pkg${i}`;
  }
  return { desyncs, systemPackages };
}

async function makeOurs(dir, n, evalCost, { legacy = false } = {}) {
  const { desyncs, systemPackages } = desyncSetup(n);
  const host = await createDemoHost(dir, { revisions: [{ label: `good-${n}`, evalCost, extraPackages: n }], desyncs, systemPackages });
  if (legacy) await host.writeConfig({ system: { ...host.config.system, activate: [process.execPath, FAKE_REBUILD, 'switch', '--host', dir] } });
  const config = parseConfig(host.config);
  // The host's stand-in systemctl first on PATH (the health gate lists failed units).
  const hostEnv = { ...env, PATH: host.path };
  const once = async () => {
    const { run, calls } = timedRunner();
    const deps = {
      config,
      nix: createCliNix({ env: hostEnv, run }),
      run,
      store: createStateStore(config.stateDir),
      logger: createLogger({ write: () => undefined }),
      env: hostEnv,
    };
    const t = process.hrtime.bigint();
    const res = await runUpgrade(deps);
    const wallMs = Number(process.hrtime.bigint() - t) / 1e6;
    return { res, calls, wallMs };
  };
  const first = await once(); // establishes the pins (not measured)
  if (first.res.exitCode !== 0) throw new Error(`setup run failed: ${JSON.stringify(first.res.error)}`);
  return { host, once };
}

async function makeBaseline(dir, n, evalCost) {
  const { desyncs, systemPackages } = desyncSetup(n);
  const host = await createDemoHost(dir, { revisions: [{ label: `good-${n}`, evalCost, extraPackages: n }], desyncs, systemPackages });
  const pinsDir = join(host.stateDir, 'pins');
  await mkdir(pinsDir, { recursive: true });
  const good = execFileSync('nix-store', ['--add', join(host.dir, 'revs', `good-${n}`)], { env, encoding: 'utf8' }).trim();
  // Rooted (outside the timed part) so another process's garbage collection on this shared
  // machine cannot delete a pinned nixpkgs between trials.
  const root = (p, name) => execFileSync('nix-store', ['--realise', p, '--add-root', join(host.dir, 'bench-roots', name), '--indirect'], { env, stdio: 'ignore' });
  await mkdir(join(host.dir, 'bench-roots'), { recursive: true });
  root(good, 'good');
  const pins = Object.fromEntries(Object.keys(desyncs).map((d) => [d, { path: good, desyncAge: 0 }]));
  const writePin = (name, p) => writeFile(join(pinsDir, `${name}.nix`), `{ desyncAge = ${p.desyncAge}; path = ${JSON.stringify(p.path)}; }\n`);
  for (const [d, p] of Object.entries(pins)) await writePin(d, p);
  const T = { timeoutMs: 600_000, env };
  const once = async () => {
    const { run, calls } = timedRunner();
    const t = process.hrtime.bigint();
    const add = await run(['nix-store', '--add', realpathSync(join(host.dir, 'channels', 'nixos'))], T);
    const cand = add.stdout.trim();
    const failed = [];
    for (const [d, cfg] of Object.entries(desyncs)) {
      const r = await run(['nix-build', cand, ...cfg.requireBuilds.flatMap((a) => ['-A', a]), '--no-out-link'], T);
      if (r.exitCode !== 0) failed.push(d);
    }
    const next = structuredClone(pins);
    for (const d of Object.keys(desyncs)) {
      if (failed.includes(d)) {
        // The proposal's second evaluation for a failing desync: its attrs on the old pin.
        const r = await run(['nix-build', pins[d].path, ...desyncs[d].requireBuilds.flatMap((a) => ['-A', a]), '--no-out-link'], T);
        if (r.exitCode !== 0) throw new Error(`baseline: ${d} fails on its old pin too`);
        next[d].desyncAge += 1;
      } else next[d] = { path: cand, desyncAge: 0 };
    }
    for (const [d, p] of Object.entries(next)) await writePin(d, p);
    const sys = await run([process.execPath, FAKE_REBUILD, 'switch', '--host', host.dir], T);
    if (sys.exitCode !== 0) throw new Error(`baseline system build failed: ${sys.stderr}`);
    Object.assign(pins, next);
    const wallMs = Number(process.hrtime.bigint() - t) / 1e6;
    root(cand, `cand-${calls.length}-${Date.now()}`);
    return { calls, wallMs, failed };
  };
  return { host, once };
}

// ---------------------------------------------------------------- main
const tmp = await mkdtemp(join(tmpdir(), 'nixos-desync-bench-loop-'));
const results = { started: new Date().toISOString(), nproc: cpus().length, loadavgStart: loadavg(), sizes: [] };
try {
  Object.assign(results, await calibrate(tmp));
  log(`evalCost ${results.evalCost}: (import rev {}).hello.drvPath evaluates in ${results.evalSeconds.toFixed(2)} s`);
  for (const n of SIZES) {
    log(`${n} desync(s): setting up (one unmeasured run of each side establishes the pins)`);
    const ours = await makeOurs(join(tmp, `ours-${n}`), n, results.evalCost);
    const legacy = await makeOurs(join(tmp, `legacy-${n}`), n, results.evalCost, { legacy: true });
    const base = await makeBaseline(join(tmp, `base-${n}`), n, results.evalCost);
    const row = { desyncs: n, trials: [] };
    for (let t = 0; t < TRIALS; t++) {
      // A fresh revision per side and trial (same shape, own label), so each side builds cold.
      for (const [side, h] of [['ours', ours.host], ['legacy', legacy.host], ['base', base.host]]) {
        const label = `cand-${n}-${t}-${side}`;
        await writeFakeNixpkgs(join(h.dir, 'revs', label), { label, evalCost: results.evalCost, extraPackages: n, broken: ['pkg0'] });
        await h.useRevision(label);
      }
      const order = t % 2 === 0 ? ['baseline', 'ours', 'legacy'] : ['legacy', 'ours', 'baseline'];
      const trial = { load1: loadavg()[0] };
      for (const side of order) {
        if (side === 'ours' || side === 'legacy') {
          const r = await (side === 'ours' ? ours : legacy).once();
          const cmdMs = r.calls.reduce((s, c) => s + c.ms, 0);
          trial[side] = {
            wallMs: r.wallMs,
            exitCode: r.res.exitCode,
            result: r.res.result,
            reportedEvaluations: r.res.evaluations,
            evaluations: countEvaluations(r.calls),
            commands: r.calls.length,
            commandMs: cmdMs,
            overheadMs: r.wallMs - cmdMs,
            stages: r.res.stages,
            failed: r.res.desyncs.filter((d) => d.result === 'failed').map((d) => d.name),
          };
        } else {
          const r = await base.once();
          const cmdMs = r.calls.reduce((s, c) => s + c.ms, 0);
          trial.baseline = { wallMs: r.wallMs, evaluations: countEvaluations(r.calls), commands: r.calls.length, commandMs: cmdMs, failed: r.failed };
        }
      }
      trial.ratio = trial.ours.wallMs / trial.baseline.wallMs;
      trial.ratioLegacy = trial.legacy.wallMs / trial.baseline.wallMs;
      log(`${n} desync(s) trial ${t + 1}/${TRIALS}: ours ${(trial.ours.wallMs / 1000).toFixed(2)} s (${trial.ours.evaluations.gate} gate + ${trial.ours.evaluations.system} system evals, overhead ${trial.ours.overheadMs.toFixed(0)} ms) · baseline ${(trial.baseline.wallMs / 1000).toFixed(2)} s (${trial.baseline.evaluations.gate} + ${trial.baseline.evaluations.system}) · ratio ${trial.ratio.toFixed(2)} · legacy ${(trial.legacy.wallMs / 1000).toFixed(2)} s ratio ${trial.ratioLegacy.toFixed(2)} · load ${trial.load1.toFixed(2)}`);
      row.trials.push(trial);
    }
    const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
    row.median = {
      oursMs: med(row.trials.map((x) => x.ours.wallMs)),
      baselineMs: med(row.trials.map((x) => x.baseline.wallMs)),
      ratio: med(row.trials.map((x) => x.ratio)),
      legacyMs: med(row.trials.map((x) => x.legacy.wallMs)),
      ratioLegacy: med(row.trials.map((x) => x.ratioLegacy)),
      legacyGateMs: med(row.trials.map((x) => (x.legacy.stages.gate ?? 0) * 1000)),
      overheadMs: med(row.trials.map((x) => x.ours.overheadMs)),
      oursGateMs: med(row.trials.map((x) => (x.ours.stages.gate ?? 0) * 1000)),
      oursEvaluations: row.trials[0].ours.evaluations,
      baselineEvaluations: row.trials[0].baseline.evaluations,
    };
    results.sizes.push(row);
  }
} finally {
  results.loadavgEnd = loadavg();
  await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
}

if (args.json) {
  await mkdir(dirname(args.json), { recursive: true });
  await writeFile(args.json, JSON.stringify(results, null, 2) + '\n');
}
const pad = (s, w) => String(s).padStart(w);
const sec = (ms) => (ms / 1000).toFixed(2);
console.log(`\nLoop: one run with real Nix; fake nixpkgs evalCost ${results.evalCost} (one import ≈ ${results.evalSeconds.toFixed(2)} s); median of ${TRIALS} interleaved trial(s); load ${results.loadavgStart[0].toFixed(2)} → ${results.loadavgEnd[0].toFixed(2)}`);
console.log(`${pad('desyncs', 7)} | ${pad('evals ours', 10)} ${pad('evals base', 10)} | ${pad('ours s', 7)} ${pad('(gate)', 6)} ${pad('base s', 7)} ${pad('ratio', 6)} | ${pad('legacy s', 11)} ${pad('ratio', 6)} | ${pad('overhead s', 10)}`);
for (const r of results.sizes) {
  const m = r.median;
  const ev = (e) => `${e.total} (${e.gate}+${e.system})`;
  console.log(`${pad(r.desyncs, 7)} | ${pad(ev(m.oursEvaluations), 10)} ${pad(ev(m.baselineEvaluations), 10)} | ${pad(sec(m.oursMs), 7)} ${pad(sec(m.oursGateMs), 6)} ${pad(sec(m.baselineMs), 7)} ${pad(m.ratio.toFixed(2), 6)} | ${pad(sec(m.legacyMs), 11)} ${pad(m.ratioLegacy.toFixed(2), 6)} | ${pad((m.overheadMs / 1000).toFixed(3), 10)}`);
}
console.log('evals = Nix evaluations (gate + system); ours: nix-instantiate for the gate + nixos-rebuild build, then the default activation of exactly the built toplevel (test, health gate, profile + boot: no evaluation); legacy: system.activate = ["nixos-rebuild", "switch"] (a 2nd evaluation)');
