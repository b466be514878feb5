// Step 8b: the health gate against the activated system — new failed units (except those
// failed before and ignoreUnits) and the health checks, within timeouts.health.
import { formatSeconds } from '../../util/duration.js';
import { DesyncError } from '../../util/errors.js';
import { failpoint } from '../../util/failpoint.js';
import { indent } from './gate.js';
import { rollbackNeeded, type RunContext } from '../context.js';

export async function verifyStage(ctx: RunContext): Promise<void> {
  const { system, config, log } = ctx;
  const toplevel = ctx.built!.toplevel!;
  const s = performance.now();
  const report = await system.health(toplevel, ctx.previous, ctx.baseline, { signal: ctx.signal, onSpawn: ctx.call('health').onSpawn });
  failpoint('after-health');
  // Checks killed because of SIGTERM/SIGINT say nothing about the new system: no verdict.
  if (ctx.signal?.aborted) throw new DesyncError('E_INTERRUPTED', `interrupted during the health gate of ${toplevel}`);
  ctx.next.health = { lastSuccess: report.ok, lastAt: ctx.now().toISOString() };
  const what = [report.checked.units ? 'failed units' : null, `${report.checked.checks} check(s)`].filter((x) => x !== null).join(', ');
  if (report.ok) {
    log.info(`health     healthy after ${config.health.settle} settle (${what}) (${formatSeconds((performance.now() - s) / 1000)})`, { stage: 'health', result: 'passed' });
    return;
  }
  for (const f of report.failures) {
    log.info(`health     FAILED — ${f.kind} ${f.name}: ${f.reason}${f.tail ? '\n' + indent(f.tail) : ''}`, { stage: 'health', result: 'failed', kind: f.kind, name: f.name });
  }
  const names = report.failures.map((f) => `${f.kind} ${f.name} (${f.reason})`).join('; ');
  const tails = report.failures.filter((f) => f.tail).map((f) => `${f.kind} ${f.name}:\n${f.tail}`).join('\n');
  throw rollbackNeeded('health', `health gate failed for ${toplevel}: ${names}${tails ? '\n' + tails : ''}`, undefined, { failures: report.failures });
}
