// Step 9: commit the set atomically (state.json is the commit point), then the source makes it
// durable and the older sets (with their GC roots) go.
import { failpoint } from '../../util/failpoint.js';
import type { RunContext } from '../context.js';

export async function commitStage(ctx: RunContext): Promise<void> {
  const { store, res, decision, next } = ctx;
  next.committed = { setId: res.runId, at: ctx.now().toISOString(), pins: decision!.pins };
  next.desyncs = decision!.records; // the records of this set, committed with it
  await store.writeState(next, 'mid-state-write');
  ctx.committed = true;
  failpoint('after-commit');
  await ctx.source.commit({ id: res.runId, pins: decision!.pins }, ctx.call('build'));
  for (const id of await store.listSets()) if (id !== res.runId) await store.removeSet(id);
  failpoint('after-old-sets-removed');
  ctx.log.info(`commit     pin set ${res.runId} committed (${Object.keys(decision!.pins).length} pins)`, { stage: 'commit', setId: res.runId });
}
