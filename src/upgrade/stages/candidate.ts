// Step 4: the candidate nixpkgs, rooted at once (in a new set) so a concurrent GC cannot delete it mid-run.
import { join } from 'node:path';
import { failpoint } from '../../util/failpoint.js';
import type { RunContext } from '../context.js';

export async function candidateStage(ctx: RunContext): Promise<void> {
  const { store, res } = ctx;
  const c = await ctx.source.candidate(ctx.call('channel'));
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
