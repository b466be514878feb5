// Step 8a: activate exactly the built toplevel. The journal names it (and the system running
// before) first, so a crash from here on is rolled back by the next run.
import { formatSeconds } from '../../util/duration.js';
import { errorMessage } from '../../util/errors.js';
import { failpoint } from '../../util/failpoint.js';
import { rollbackNeeded, type RunContext } from '../context.js';

export async function activateStage(ctx: RunContext): Promise<void> {
  const { system, config } = ctx;
  const toplevel = ctx.built!.toplevel!;
  ctx.previous = await system.current();
  // Units failed before the activation do not count against the new system.
  if (system.gated && config.health.failedUnits) ctx.baseline = await system.failedUnits(ctx.call('health'));
  await ctx.saveJournal({ activation: { toplevel, previous: ctx.previous, mode: String(system.mode) } });
  failpoint('before-activate');
  const s = Date.now();
  ctx.activated = system.gated;
  let line: string | null;
  try {
    line = await system.activate(toplevel, ctx.call('system'));
  } catch (err) {
    const tail = (err as { details?: { tail?: unknown } }).details?.tail;
    throw rollbackNeeded('activation', `${errorMessage(err)}${typeof tail === 'string' && tail ? '\n' + tail : ''}`, err);
  }
  if (line !== null) ctx.log.info(`activate   ${line} (${formatSeconds((Date.now() - s) / 1000)})`, { stage: 'activate', toplevel });
  failpoint('after-activate');
}
