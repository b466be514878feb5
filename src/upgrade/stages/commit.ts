// Step 9: commit the set atomically (state.json is the commit point) with the new system's
// sources (provenance); the older sets (with their GC roots) go; the healthy system becomes a
// profile generation and the boot default; then the source makes the set durable its own way
// (flake: git commit of flake.lock).
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { SystemSources } from '../../state/model.js';
import { pruneSystems } from '../../system/generations.js';
import { failpoint } from '../../util/failpoint.js';
import { shielded } from '../../util/shield.js';
import { withoutRejected } from '../../state/rejected.js';
import type { RunContext } from '../context.js';
import type { SystemSide } from '../../system/system.js';
import type { CallOptions } from '../../nix/adapter.js';
import { adoptedAt } from './rollout.js';
import { pendingBoot } from './boot-path.js';

export async function commitStage(ctx: RunContext): Promise<void> {
  const { store, res, decision, next, config, system, log } = ctx;
  const at = ctx.now().toISOString();
  next.committed = { setId: res.runId, at, pins: decision!.pins };
  next.desyncs = decision!.records; // the records of this set, committed with it
  // Other rejected candidates stay rejected; this one went live (e.g. --retry after a fix).
  next.rejected = withoutRejected(next.rejected, ctx.candidate!);
  const toplevel = ctx.built?.toplevel ?? null;
  if (toplevel !== null && system.mode !== null) {
    next.systems = await pruneSystems(next.systems, config.profilesDir, config.runDir, [toplevel]);
    next.systems[toplevel] = sourcesOf(ctx, at);
    next.rollout.adopted = adoptedAt(ctx.prev, ctx.candidate!, at);
  }
  // Healthy and committed: the verified system from now on (what later rollbacks return to); a boot-path system only once verify-boot passed.
  if (toplevel !== null && system.gated && ctx.bootPath === null) next.verified = { toplevel, at, runId: res.runId, how: 'health' };
  if (toplevel !== null && system.mode !== null) next.reboot.pending = await pendingBoot(ctx, toplevel, at);
  if (ctx.bootPath !== null) res.bootPath = ctx.bootPath;
  await store.writeState(next, 'mid-state-write');
  ctx.committed = true;
  failpoint('after-commit');
  for (const id of await store.listSets()) if (id !== res.runId) await store.removeSet(id);
  // Committed: no rollback is due any more, so its target needs no root of its own.
  await rm(join(store.setDir(res.runId), 'roots', 'rollback-target'), { force: true });
  failpoint('after-old-sets-removed');
  log.info(`commit     pin set ${res.runId} committed (${Object.keys(decision!.pins).length} pins)`, { stage: 'commit', setId: res.runId });
  if (toplevel !== null) {
    // Part of the commit: a SIGTERM now never leaves the committed system without its boot entry.
    const line = await finalizeSystem(system, toplevel, ctx.uninterruptible('system'));
    if (line !== null) log.info(`boot       ${line}`, { stage: 'commit', toplevel });
    failpoint('after-finalize');
  }
  ctx.finalized = true;
  // Verified now: a run that dies from here on left nothing for recovery to finish on the system side.
  if (ctx.journal.activation !== null) await ctx.saveJournal({ activation: null });
  // Last: a failing git commit of flake.lock (e.g. signing) fails the run but never costs the
  // healthy system its boot entry, and the committed state already says what runs.
  await ctx.source.commit({ id: res.runId, pins: decision!.pins }, ctx.call('build'));
}

/** Makes the committed `toplevel` the profile's newest generation and the boot default, shielded like a rollback (a second SIGTERM waits for it). */
export function finalizeSystem(system: SystemSide, toplevel: string, o: CallOptions): Promise<string | null> {
  return shielded(o.shield, () => system.finalize(toplevel, o));
}

function sourcesOf(ctx: RunContext, at: string): SystemSources {
  const c = ctx.candidate!;
  return {
    runId: ctx.res.runId,
    builtAt: at,
    nixpkgs: { revision: c.revision, path: c.path },
    desyncs: Object.fromEntries(Object.entries(ctx.decision!.pins).map(([n, p]) => {
      const h = ctx.decision!.records[n]?.heldBack ?? null;
      return [n, { revision: p.revision, desyncAge: p.desyncAge, path: p.path, heldBack: h && { stage: h.stage, reason: h.reason } }];
    })),
  };
}
