// Step 8a: activate exactly the built toplevel. The rollback target is GC-rooted and the
// journal names it (and the toplevel) first, so a crash from here on is rolled back by the next run.
import { join } from 'node:path';
import { formatSeconds } from '../../util/duration.js';
import { DesyncError, errorMessage } from '../../util/errors.js';
import { failpoint } from '../../util/failpoint.js';
import { bootId } from '../../util/proc.js';
import { rollbackNeeded, type RunContext } from '../context.js';

export async function activateStage(ctx: RunContext): Promise<void> {
  const { system, config } = ctx;
  const toplevel = ctx.built!.toplevel!;
  ctx.previous = await system.current();
  // The rollback target stays in the store until the run ends (rooted with the run's set).
  if (ctx.previous !== null) {
    try {
      await ctx.nix.addRoot(ctx.previous, join(ctx.store.setDir(ctx.res.runId), 'roots', 'rollback-target'), ctx.call('build'));
    } catch (err) {
      throw new DesyncError('E_ACTIVATE', `cannot GC-root the rollback target ${ctx.previous} (${errorMessage(err)}); nothing was activated`, { cause: err });
    }
  }
  // Units failed before the activation do not count against the new system.
  if (system.gated && config.health.failedUnits) ctx.baseline = await system.failedUnits(ctx.call('health'));
  await ctx.saveJournal({ activation: { toplevel, previous: ctx.previous, mode: String(system.mode), bootId: bootId() } });
  failpoint('before-activate');
  const s = performance.now();
  ctx.activated = system.gated;
  let line: string | null;
  try {
    line = await system.activate(toplevel, ctx.call('system'));
  } catch (err) {
    // A command we killed because of SIGTERM/SIGINT says nothing about the new system.
    if (ctx.signal?.aborted) throw new DesyncError('E_INTERRUPTED', `interrupted during the activation of ${toplevel}`, { cause: err });
    const tail = (err as { details?: { tail?: unknown } }).details?.tail;
    throw rollbackNeeded('activation', `${errorMessage(err)}${typeof tail === 'string' && tail ? '\n' + tail : ''}`, err);
  }
  if (line !== null) ctx.log.info(`activate   ${line} (${formatSeconds((performance.now() - s) / 1000)})`, { stage: 'activate', toplevel });
  failpoint('after-activate');
}
