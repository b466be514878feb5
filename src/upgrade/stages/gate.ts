// Step 5: gate every desync against the candidate: one evaluation + a keep-going build for all
// desyncs' requireBuilds, then each desync's checks.
import type { Candidate } from '../../nix/adapter.js';
import { runningSystemPlatform } from '../../nix/platform.js';
import { DesyncError, errorMessage } from '../../util/errors.js';
import { describeFailure, tailLines } from '../../util/exec.js';
import { formatSeconds } from '../../util/duration.js';
import { failpoint } from '../../util/failpoint.js';
import type { GateOutcome } from '../policy.js';
import type { RunContext } from '../context.js';

/** First line of a failure, for one-line summaries. */
function firstLine(s: string): string {
  return s.split('\n').find((l) => l.trim() !== '')?.trim() ?? s;
}

export function indent(s: string): string {
  return s.split('\n').map((l) => `           | ${l}`).join('\n');
}

export async function gateStage(ctx: RunContext): Promise<void> {
  ctx.gate = await runGate(ctx, Object.keys(ctx.config.desyncs).sort(), ctx.candidate!);
  failpoint('after-gate');
  // Gate results cut short by an interruption say nothing about the desyncs: don't record them.
  if (ctx.signal?.aborted) throw new DesyncError('E_INTERRUPTED', 'interrupted during the gate; the committed pin set is kept');
}

async function runGate(ctx: RunContext, names: string[], candidate: Candidate): Promise<GateOutcome[]> {
  const { config, log } = ctx;
  if (names.length === 0) return [];
  const s = performance.now();
  // The same nixpkgs arguments as the system's import: its platform, no ambient overlays (gate-expr.ts).
  const system = await runningSystemPlatform(config.runDir);
  const report = await ctx.nix.buildGates(
    names.map((n) => ({ desync: n, nixpkgs: candidate.path, attrs: config.desyncs[n]!.requireBuilds, config: config.desyncs[n]!.nixpkgsConfig, system })),
    ctx.call('build'),
  );
  ctx.res.evaluations += report.evaluations;
  log.info(`gate       built requireBuilds of ${names.length} desync(s) with ${report.evaluations} evaluation(s) (${formatSeconds((performance.now() - s) / 1000)})`,
    { stage: 'gate', evaluations: report.evaluations });
  const out: GateOutcome[] = [];
  for (const name of names) {
    const t = performance.now();
    const b = report.results.get(name) ?? { desync: name, ok: false, attrs: [], error: 'no build result' };
    if (!b.ok) {
      const failed = b.attrs.filter((a) => !a.ok);
      const error = b.error ?? failed.map((a) => `${a.attr}: ${firstLine(a.error ?? 'failed')}`).join('; ');
      log.info(`gate       ${name}: FAILED — ${error}`, { stage: 'gate', desync: name, result: 'failed' });
      if (b.error && b.error.includes('\n')) log.info(indent(b.error), { stage: 'gate', desync: name });
      for (const a of failed) {
        if (a.failedAt === 'eval' && a.error?.includes('\n')) log.info(indent(a.error), { stage: 'gate', desync: name, attr: a.attr });
        if (a.logTail) log.info(`           build log of ${a.attr} (last lines):\n${indent(a.logTail)}`, { stage: 'gate', desync: name, attr: a.attr });
      }
      out.push({ name, passed: false, error });
      continue;
    }
    const outPaths = b.attrs.flatMap((a) => a.outputs);
    let checkError: string | undefined;
    for (const check of config.desyncs[name]!.checks) {
      const r = await ctx.run(check, {
        env: { ...ctx.env, NIXOS_DESYNC_NAME: name, NIXOS_DESYNC_CANDIDATE: candidate.path, NIXOS_DESYNC_OUT_PATHS: outPaths.join(' ') },
        ...ctx.call('check'),
      }).catch((err: unknown) => ({ failedToStart: errorMessage(err) }) as const);
      if ('failedToStart' in r) {
        checkError = `check ${check[0]}: ${r.failedToStart}`;
        break;
      }
      if (r.exitCode !== 0 || r.timedOut) {
        checkError = `check ${check.join(' ')}: ${describeFailure(r)}`;
        const tail = tailLines(r.stderr + '\n' + r.stdout, 10);
        log.info(`gate       ${name}: FAILED — ${checkError}${tail ? '\n' + indent(tail) : ''}`, { stage: 'gate', desync: name, result: 'failed' });
        break;
      }
    }
    if (checkError !== undefined) {
      out.push({ name, passed: false, error: checkError });
      continue;
    }
    const checks = config.desyncs[name]!.checks.length;
    log.info(`gate       ${name}: passed (${b.attrs.length} attr(s) built, ${checks} check(s)) (${formatSeconds((performance.now() - t) / 1000)})`,
      { stage: 'gate', desync: name, result: 'passed' });
    out.push({ name, passed: true });
  }
  return out;
}
