// The host dashboard's "Health gate, rollbacks and state" row (host.ts places it): whether the
// running system is verified, the last health gate, rollbacks, corrupt state files and what
// the running system was built from.
import { instant, range, sel, statPanel, tablePanel, timeseriesPanel, boolMapping, type Step } from './panels.js';

const OK_RED: Step[] = [['green', null], ['red', 1]];

export const unverifiedStat = () => statPanel({
  title: 'Running system',
  description: 'Verified: the running system passed the health gate and was committed. UNVERIFIED: activated and never confirmed healthy, or a rollback failed, and no run is in progress (NixosDesyncUnverifiedSystem pages; `nixos-desync recover` or the next run returns to the last verified system).',
  w: 4, h: 4,
  query: instant('A', sel('nixos_desync_system_unverified')),
  steps: OK_RED,
  mappings: boolMapping({ text: 'verified', color: 'green', index: 0 }, { text: 'UNVERIFIED', color: 'red', index: 1 }),
});

export const healthGateStat = () => statPanel({
  title: 'Last health gate',
  description: 'Result of the last health gate, run against a freshly activated system (none yet: system.activate "boot" or null never runs one).',
  w: 4, h: 4,
  query: instant('A', sel('nixos_desync_last_health_check_success')),
  steps: [['red', null], ['green', 1]],
  mappings: boolMapping({ text: 'failed', color: 'red', index: 1 }, { text: 'passed', color: 'green', index: 0 }),
  noValue: 'none yet',
});

export const lastRollbackStat = () => statPanel({
  title: 'Last rollback',
  description: 'Time since the last rollback after a failed activation or health gate (NixosDesyncRolledBack fires until the next successful run).',
  w: 4, h: 4,
  query: instant('A', `time() - (${sel('nixos_desync_last_rollback_timestamp_seconds')} > 0)`),
  unit: 's',
  steps: [['orange', null], ['green', 604800]],
  noValue: 'never',
});

export const corruptFilesStat = () => statPanel({
  title: 'Corrupt state files',
  description: 'State files the loop found corrupt and moved aside (*.corrupt-* under the state directory; status names them): inspect them, then delete them.',
  w: 4, h: 4,
  query: instant('A', sel('nixos_desync_state_corrupt_files')),
  steps: OK_RED,
});

export const runningSourcesTable = () => tablePanel({
  title: 'Running system built from',
  description: "The running system's sources as the loop recorded them: its nixpkgs revision, and each desync whose running revision differs from its committed pin (`nixos-desync generations` for every generation).",
  w: 8, h: 4,
  exprs: [sel('nixos_desync_system_source_info')],
  hide: ['job', 'instance', 'Value'],
  columns: { source: 'Source', revision: 'Revision' },
  overrides: {},
});

export const rollbacksPanel = () => timeseriesPanel({
  title: 'Rollbacks', description: 'Rollbacks by reason: the activation failed, or the activated system failed its health gate.',
  w: 12, h: 7, bars: true,
  queries: [range('A', `sum by (reason) (increase(${sel('nixos_desync_rollbacks_total')}[$__rate_interval]))`, '{{reason}}')],
  colors: { activation: 'red', health: 'orange' },
});

export const healthOverTimePanel = () => timeseriesPanel({
  title: 'Health gate and verification',
  description: 'The last health gate result (1 = passed) and whether the running system is unverified (1), over time.',
  w: 12, h: 7,
  queries: [
    range('A', sel('nixos_desync_last_health_check_success'), 'last health gate passed'),
    range('B', sel('nixos_desync_system_unverified'), 'unverified'),
  ],
  colors: { unverified: 'red', 'last health gate passed': 'green' },
});
