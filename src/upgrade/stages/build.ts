// Step 7: the candidate set (written, rooted) is exposed to the system build; a failed build
// restores the previous set byte-for-byte.
import { join } from 'node:path';
import { DesyncError, isDesyncError } from '../../util/errors.js';
import { formatSeconds } from '../../util/duration.js';
import { failpoint } from '../../util/failpoint.js';
import type { RunContext } from '../context.js';
import { abandonCandidateSet, previousSet } from './restore.js';

export async function buildStage(ctx: RunContext): Promise<void> {
  const { store, res, decision } = ctx;
  await store.writeSetPins(res.runId, decision!.pins);
  failpoint('after-set-pins');
  for (const [name, pin] of Object.entries(decision!.pins)) {
    await ctx.nix.addRoot(pin.storePath, join(store.setDir(res.runId), 'roots', name), ctx.call('build'));
  }
  failpoint('after-set-roots');
  await ctx.source.expose({ id: res.runId, pins: decision!.pins }, previousSet(ctx), ctx.call('build'));
  failpoint('after-pins-swap');
  try {
    ctx.built = await ctx.system.build(ctx.call('system'));
  } catch (err) {
    await abandonCandidateSet(ctx);
    if (!isDesyncError(err, 'E_SYSTEM_BUILD')) throw err;
    const tail = typeof err.details.tail === 'string' && err.details.tail ? `\n${err.details.tail}` : '';
    throw new DesyncError('E_SYSTEM_BUILD', `${err.message}; the previous pin set was restored${tail}`, { cause: err });
  }
  ctx.log.info(`system     ${ctx.built.command} ok (${formatSeconds(ctx.built.durationMs / 1000)})`, { stage: 'system_build' });
}
