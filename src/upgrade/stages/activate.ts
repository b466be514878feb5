// Step 8: activate the built system (system.activate).
import { formatSeconds } from '../../util/duration.js';
import { failpoint } from '../../util/failpoint.js';
import type { RunContext } from '../context.js';

export async function activateStage(ctx: RunContext): Promise<void> {
  const s = Date.now();
  const line = await ctx.system.activate(ctx.built!, ctx.call('system'));
  if (line !== null) ctx.log.info(`activate   ${line} (${formatSeconds((Date.now() - s) / 1000)})`, { stage: 'activate' });
  failpoint('after-activate');
}
