// Step 4: the candidate nixpkgs, rooted at once (in a new set) so a concurrent GC cannot delete it mid-run.
import { join } from 'node:path';
import { DesyncError } from '../../util/errors.js';
import { failpoint } from '../../util/failpoint.js';
import { findRejected } from '../../state/rejected.js';
import type { RunContext } from '../context.js';

export async function candidateStage(ctx: RunContext): Promise<void> {
  const { store, res } = ctx;
  const c = await ctx.source.candidate(ctx.call('channel'));
  // By identity (store path; flake: rev + narHash), never by the revision label alone.
  const rejected = findRejected(ctx.prev.rejected, c);
  if (rejected !== null) {
    const why = `candidate ${c.revision} (${c.path}) was rejected: run ${rejected.runId} rolled it back at ${rejected.at} (${rejected.reason === 'health' ? 'health gate failed' : 'activation failed'})`;
    if (!ctx.retry) {
      throw new DesyncError('E_REJECTED', `${why}; it is skipped (a later, different candidate is tried when the source offers one). ` +
        'Fix the cause (see `nixos-desync status` and the rolled-back run\'s output), then run `nixos-desync upgrade --retry` to try it again');
    }
    ctx.log.warn(`${why}; trying it again (--retry)`, { stage: 'candidate', revision: c.revision });
  }
  if (!ctx.dryRun) {
    await store.createSet(res.runId);
    await ctx.saveJournal({ candidateSetId: res.runId });
    failpoint('after-candidate-set');
    await ctx.nix.addRoot(c.storePath, join(store.setDir(res.runId), 'roots', 'candidate'), ctx.call('build'));
    failpoint('after-candidate-root');
  }
  ctx.candidate = c;
  res.candidate = { path: c.path, revision: c.revision };
  ctx.log.info(`candidate  ${c.path} (revision ${c.revision})`, { stage: 'candidate', path: c.path, revision: c.revision });
}
