// Step 9b's boot path: when the new toplevel declares switch inhibitors that differ from the
// running system's (nixpkgs' rule: a live switch would be refused or unsafe), no live
// `switch-to-configuration test` is attempted — the candidate becomes the boot default at the
// commit and its health gate runs at the next boot (`verify-boot`).
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { RebootState } from '../../state/model.js';
import { compareToplevels, switchInhibitorsDiffer } from '../../reboot/triggers.js';
import type { RunContext } from '../context.js';

/** Sets `ctx.bootPath` (why) when the built system may not be activated live. */
export async function bootPathStage(ctx: RunContext): Promise<void> {
  if (ctx.system.mode !== 'switch') return;
  const toplevel = ctx.built!.toplevel!;
  const changes = await switchInhibitorsDiffer(await ctx.system.current(), toplevel);
  if (changes.length === 0) return;
  ctx.bootPath = `its switch inhibitors differ from the running system's (${changes.join('; ')})`;
  ctx.log.info(`activate   not activated live: ${ctx.bootPath}; it becomes the boot default and its health gate runs at the next boot (verify-boot)`, { stage: 'activate', toplevel, bootPath: true });
}

/**
 * At the commit: the candidate that waits for its boot (verify-boot checks it): one that went the
 * boot path (switch inhibitors, `system.activate` "boot"), or one that differs from the booted
 * system in a reboot trigger. `previous` is where a failed boot returns: the last verified system
 * before the first of a chain of not-yet-booted commits. Null when the next boot changes nothing.
 */
export async function pendingBoot(ctx: RunContext, toplevel: string, at: string): Promise<RebootState['pending']> {
  const { config, prev } = ctx;
  const booted = await realpath(join(config.runDir, 'booted-system')).catch(() => null);
  const running = await ctx.system.current();
  let why = ctx.bootPath ?? (ctx.system.mode === 'boot' ? 'system.activate is "boot": its health gate runs at boot' : null);
  if (why === null) {
    const reasons = booted === null ? [] : await compareToplevels(booted, toplevel, running, config.reboot.triggers);
    if (reasons.length === 0) return null;
    why = `verified live; a reboot applies ${reasons.map((r) => r.trigger).join(', ')}`;
  }
  const c = ctx.candidate!;
  const previous = prev.reboot.pending?.previous ?? ctx.previous ?? prev.verified?.toplevel ?? running;
  return { toplevel, previous: previous === toplevel ? null : previous, runId: ctx.res.runId, at, candidate: { path: c.path, revision: c.revision, id: c.id }, why };
}
