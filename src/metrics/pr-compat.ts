// The desync proposal's own state files (exporter.prDesyncDir), exported under the very same
// per-desync series as the loop's desyncs (no extra label on values), so the same alerts
// (NixosDesyncLagging, NixosDesyncMaxAgeBreached) and dashboard panels see them, once per
// name: a desync the loop already has a pin for is the loop's (its file is skipped); one the
// loop is configured for but has not pinned yet (a host migrating from the proposal) shows the
// proposal's values (this collector runs after `desyncs`, and a sample with the same labels
// replaces the earlier one). Budget: the proposal's maxDesyncAge (exporter.prMaxDesyncAge);
// breached = desyncAge at or over it (the proposal's upgrade fails from then on). pin_info
// keeps source="pr" to say where it came from.
import { bool, type Collector } from './collector.js';

export function prCompatCollector(): Collector {
  return {
    name: 'pr_compat',
    collect({ config, model }, emit) {
      const pr = model.pr;
      if (!pr) return null;
      if (pr.dirError) return pr.dirError;
      const pinned = (model.state.lastGood ?? model.state.state).committed.pins;
      const max = config.exporter.prMaxDesyncAge;
      for (const d of pr.desyncs) {
        if (Object.hasOwn(pinned, d.name)) continue;
        const l = { desync: d.name };
        emit('nixos_desync_lag_rebuilds', l, d.desyncAge);
        if (max !== null) emit('nixos_desync_max_lag_rebuilds', l, max);
        emit('nixos_desync_breached', l, bool(max !== null && d.desyncAge >= max));
        emit('nixos_desync_in_sync', l, bool(d.desyncAge === 0));
        emit('nixos_desync_pin_info', { desync: d.name, revision: d.revision, path: d.path, source: 'pr' }, 1);
      }
      const bad = Object.values(pr.errors);
      return bad.length > 0 ? bad.join('; ') : null;
    },
  };
}
