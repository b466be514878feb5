// Step 7: the candidate set (written, rooted) is exposed to the system build, which runs in a
// fresh run-private directory; the toplevel it leaves as ./result is rooted in the set. A
// failed build restores the previous set byte-for-byte.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DesyncError, isDesyncError } from '../../util/errors.js';
import { formatSeconds } from '../../util/duration.js';
import { failpoint } from '../../util/failpoint.js';
import type { RunContext } from '../context.js';
import { abandonCandidateSet, previousSet } from './restore.js';

/** `<stateDir>/build/<runId>`: the run-private working directory of `system.build`. */
export function buildDir(ctx: RunContext): string {
  return join(ctx.store.dir, 'build', ctx.res.runId);
}

export async function buildStage(ctx: RunContext): Promise<void> {
  const { store, res, decision } = ctx;
  await store.writeSetPins(res.runId, decision!.pins);
  failpoint('after-set-pins');
  // One root per distinct store path: pins that follow the candidate share its root.
  const rooted = new Set([ctx.candidate!.storePath]);
  for (const [name, pin] of Object.entries(decision!.pins)) {
    if (rooted.has(pin.storePath)) continue;
    rooted.add(pin.storePath);
    await ctx.nix.addRoot(pin.storePath, join(store.setDir(res.runId), 'roots', name), ctx.call('build'));
  }
  failpoint('after-set-roots');
  await ctx.source.expose({ id: res.runId, pins: decision!.pins }, previousSet(ctx), ctx.call('build'));
  failpoint('after-pins-swap');
  const work = buildDir(ctx);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true, mode: 0o700 });
  try {
    // A system build evaluates the system once (nixos-rebuild build); a hold-back's rebuild counts again.
    ctx.res.evaluations += 1;
    ctx.built = await ctx.system.build(work, ctx.call('system'));
    // What gets activated is exactly this toplevel: rooted with the set before anything else.
    if (ctx.built.toplevel !== null) await ctx.nix.addRoot(ctx.built.toplevel, join(store.setDir(res.runId), 'roots', 'toplevel'), ctx.call('build'));
  } catch (err) {
    await abandonCandidateSet(ctx);
    if (!isDesyncError(err, 'E_SYSTEM_BUILD')) throw err;
    const tail = typeof err.details.tail === 'string' && err.details.tail ? `\n${err.details.tail}` : '';
    throw new DesyncError('E_SYSTEM_BUILD', `${err.message}; the previous pin set was restored${tail}`, { cause: err });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const top = ctx.built.toplevel ? ` → ${ctx.built.toplevel}` : '';
  ctx.log.info(`system     ${ctx.built.command} ok${top} (${formatSeconds(ctx.built.durationMs / 1000)})`, { stage: 'system_build', toplevel: ctx.built.toplevel });
}
