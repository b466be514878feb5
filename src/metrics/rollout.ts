// Rollout series (config `rollout`): this host's ring, its hold, since when it has run its
// adopted nixpkgs revision healthy (what later rings' query reads), and the candidates its
// rollbacks rejected (what every host's query reads). Part of the `runs` collector: they come
// from state.json and the running system, and an own collector would cost two more samples.
import type { CollectContext, Emit } from './collector.js';
import { bool, unixSeconds } from './collector.js';
import { HOLD_REASONS } from '../state/model.js';

/** The newest rejected candidates exported (the series budget; older ones are revisions the channel has left). */
export const REJECTED_EXPORTED = 2;

export function emitRollout({ config, model }: CollectContext, emit: Emit): void {
  const state = model.state.state;
  const rejected = state.rejected.slice(-REJECTED_EXPORTED);
  for (const r of rejected) emit('nixos_desync_rejected_candidate_info', { source: 'nixpkgs', revision: r.revision }, 1);
  const r = config.rollout;
  if (r === null) return;
  emit('nixos_desync_rollout_info', { ring: String(r.ring) }, 1);
  const held = state.rollout?.held ?? null;
  // Only the active reason, while held (series budget 70 + 14·D: three 0/1 series did not fit).
  if (held !== null) emit('nixos_desync_rollout_held', { reason: held.reason }, 1);
  if (held !== null) emit('nixos_desync_rollout_held_since_timestamp_seconds', {}, unixSeconds(held.since));
  // Only while the running system is the loop's build of the adopted revision (a rollback by
  // hand, or a system the loop did not build, is not a healthy run of it).
  const adopted = state.rollout?.adopted ?? null;
  const top = model.system.currentToplevel;
  const sources = top === null ? null : (state.systems[top] ?? model.system.toplevelSources);
  if (adopted !== null && sources?.nixpkgs.revision === adopted.revision) {
    emit('nixos_desync_rollout_healthy_since_timestamp_seconds', { revision: adopted.revision }, unixSeconds(adopted.since));
  }
}
