// What the loop benchmarks share (bench/loop.mjs, bench/holdback.mjs): the fake nixpkgs'
// evaluation cost calibrated to a target time, and a Runner that times every command it runs.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

// `(import ./rev {}).hello.name` does not force the fake's `cost` (a derivation's name is
// read without instantiating it); `.drvPath` does, like any real evaluation of a package.
async function timeEval(dir, cost, writeFakeNixpkgs, env) {
  await writeFakeNixpkgs(join(dir, `cal${cost}`), { label: `cal${cost}`, evalCost: cost });
  let best = Infinity; // best of 3: calibration should not follow momentary load
  for (let k = 0; k < 3; k++) {
    const t = process.hrtime.bigint();
    execFileSync('nix-instantiate', ['--eval', '-E', `(import ${join(dir, `cal${cost}`)} {}).hello.drvPath`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
  }
  return best;
}

/** The fake nixpkgs' evalCost for which one import evaluates in about `evalSeconds`. */
export async function calibrate(dir, evalSeconds, writeFakeNixpkgs, env) {
  let cost = 1_000_000;
  let t = await timeEval(dir, cost, writeFakeNixpkgs, env);
  for (let i = 0; i < 3; i++) {
    cost = Math.max(10_000, Math.round((cost * evalSeconds) / Math.max(t, 0.02)));
    t = await timeEval(dir, cost, writeFakeNixpkgs, env);
    if (Math.abs(t - evalSeconds) / evalSeconds < 0.1) break;
  }
  return { evalCost: cost, evalSeconds: t };
}

/** A Runner (util/exec's runCommand) that records every call with its wall time. */
export function timedRunner(runCommand) {
  const calls = [];
  const run = async (argv, opts) => {
    const t = process.hrtime.bigint();
    const r = await runCommand(argv, opts);
    calls.push({ argv: [...argv], ms: Number(process.hrtime.bigint() - t) / 1e6, exitCode: r.exitCode });
    return r;
  };
  return { run, calls };
}

/** Nix evaluations among the calls: the gate's (nix-instantiate/nix-build) and the system builds (the fake nixos-rebuild). */
export function countEvaluations(calls, fakeRebuild) {
  let gate = 0;
  let system = 0;
  for (const c of calls) {
    if (c.argv[0] === 'nix-instantiate' || c.argv[0] === 'nix-build') gate += 1;
    else if (c.argv.includes(fakeRebuild)) system += 1;
  }
  return { gate, system, total: gate + system };
}
