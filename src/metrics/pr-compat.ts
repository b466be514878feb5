// The desync proposal's own state files (exporter.prDesyncDir), exported under the same
// per-desync names with source="pr" so the lag/in-sync panels and rules see them too.
import { bool, type Collector } from './collector.js';

export function prCompatCollector(): Collector {
  return {
    name: 'pr_compat',
    collect({ model }, emit) {
      const pr = model.pr;
      if (!pr) return null;
      if (pr.dirError) return pr.dirError;
      for (const d of pr.desyncs) {
        const l = { desync: d.name, source: 'pr' };
        emit('nixos_desync_lag_rebuilds', l, d.desyncAge);
        emit('nixos_desync_in_sync', l, bool(d.desyncAge === 0));
        emit('nixos_desync_pin_info', { desync: d.name, revision: d.revision, path: d.path, source: 'pr' }, 1);
      }
      const bad = Object.values(pr.errors);
      return bad.length > 0 ? bad.join('; ') : null;
    },
  };
}
