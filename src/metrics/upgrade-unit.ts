// exporter.upgradeUnit: the host's own upgrade service (system.autoUpgrade's
// nixos-upgrade.service, or any other), from `systemctl show`, so a host that does not run
// the loop still shows failing and stale upgrades. systemctl absent or failing fails this
// collector alone (collector_success 0); the scrape and the other collectors go on.
import { createUnitStatusReader, isRunning, type UnitStatusReader, type UnitStatusReaderOptions } from '../watch/unit-status.js';
import { bool, type Collector } from './collector.js';

export function upgradeUnitCollector(opts: UnitStatusReaderOptions | { reader: UnitStatusReader }): Collector {
  const reader = 'reader' in opts ? opts.reader : createUnitStatusReader(opts);
  return {
    name: 'upgrade_unit',
    prepare: () => reader.refresh(),
    collect(_ctx, emit) {
      const s = reader.status;
      if (!s) return reader.error ?? 'not read yet';
      const l = { unit: s.unit };
      const last = reader.lastFinished;
      if (last) {
        emit('nixos_desync_upgrade_unit_last_run_success', l, bool(last.success));
        emit('nixos_desync_upgrade_unit_last_run_timestamp_seconds', l, last.startedAt);
        emit('nixos_desync_upgrade_unit_last_run_duration_seconds', l, last.durationSeconds);
      }
      emit('nixos_desync_upgrade_unit_running', l, bool(isRunning(s)));
      return null;
    },
  };
}
