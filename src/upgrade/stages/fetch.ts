// Step 3: bring the source up to date. Failure → exit 1, nothing changes.
import { formatSeconds } from '../../util/duration.js';
import type { RunContext } from '../context.js';

export async function fetchStage(ctx: RunContext): Promise<void> {
  const s = performance.now();
  const f = await ctx.source.fetch({ ...ctx.call('channel'), dryRun: ctx.dryRun });
  const took = f.skipped ? '' : ` (${formatSeconds((performance.now() - s) / 1000)})`;
  ctx.log.info(`fetch      ${f.message}${took}`, { stage: 'fetch', ...(f.skipped ? { skipped: true } : {}) });
}
