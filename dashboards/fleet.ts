// The fleet dashboard (uid nixos-desync-fleet): every host and desync at a glance.
// Generated into dashboards/nixos-desync-fleet.json by `npm run dashboards`.
import { BigValueColorMode } from '@grafana/grafana-foundation-sdk/common';
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import {
  NO_YES, baseDashboard, boolMapping, col, dashboardLink, instant, range, render, row, sel, statPanel,
  tablePanel, timeseriesPanel, type Step,
} from './panels.js';

const OK_RED: Step[] = [['green', null], ['red', 1]];
const OK_ORANGE: Step[] = [['green', null], ['orange', 1]];
const OK_YELLOW: Step[] = [['green', null], ['yellow', 1]];
/** Budget used: half warns (NixosDesyncLagging), all of it is the breach line. */
const BUDGET: Step[] = [['green', null], ['orange', 0.5], ['red', 1]];

/** Share of the rebuild and the time budget used, per desync (absent when unlimited). */
const REBUILD_USED = `${sel('nixos_desync_lag_rebuilds')} / ${sel('nixos_desync_max_lag_rebuilds')}`;
const TIME_USED = `${sel('nixos_desync_behind_seconds')} / ${sel('nixos_desync_max_behind_seconds')}`;

/** A fleet-wide count of series matching `cond`, 0 rather than "No data" when none does. */
function countStat(title: string, description: string, cond: string, steps: Step[]) {
  return statPanel({
    title, description, w: 4, h: 4,
    query: instant('A', `count(${cond}) or vector(0)`),
    steps,
    colorMode: BigValueColorMode.Background,
  });
}

export function fleetDashboard(): Dashboard {
  return render(
    baseDashboard({
      uid: 'nixos-desync-fleet',
      title: 'nixos-desync / Fleet',
      description: 'Every host and desync: lag against budget, breaches, last successful runs, reboots.',
      multi: true,
    })
      .link(dashboardLink('Host detail', 'nixos-desync-host'))
      .withRow(row('Fleet'))
      .withPanel(countStat('Breached desyncs',
        'Desyncs that failed their gate after using up their budget (NixosDesyncMaxAgeBreached pages).',
        `${sel('nixos_desync_breached')} == 1`, OK_RED))
      .withPanel(countStat('Desyncs ≥ 50% of a budget',
        'Desyncs that used at least half of their rebuild or time budget (NixosDesyncLagging).',
        'max by (job, instance, desync) (' +
          `label_replace(${REBUILD_USED}, "budget", "rebuilds", "", "") or ` +
          `label_replace(${TIME_USED}, "budget", "time", "", "")) >= 0.5`,
        OK_ORANGE))
      .withPanel(countStat('Desyncs behind the channel',
        'Desyncs whose pin is not the current channel revision.',
        `${sel('nixos_desync_in_sync')} == 0`, OK_YELLOW))
      .withPanel(countStat('Hosts whose last run failed',
        'Hosts whose most recent upgrade run failed.',
        `${sel('nixos_desync_last_run_success')} == 0`, OK_RED))
      .withPanel(countStat('Hosts needing a reboot',
        'Hosts whose booted kernel, initrd or modules differ from the current system.',
        `${sel('nixos_desync_system_reboot_required')} == 1`, OK_YELLOW))
      .withPanel(countStat('Exporters down',
        'Targets Prometheus cannot scrape (NixosDesyncExporterDown).',
        `${sel('up')} == 0`, OK_RED))

      .withRow(row('Desyncs: lag against budget'))
      .withPanel(tablePanel({
        title: 'Every host × desync',
        description: 'One row per host and desync: lag in rebuilds and time against each budget (empty budget = unlimited), whether the desync is breached, and how long ago its gate last passed.',
        w: 24, h: 10,
        exprs: [
          sel('nixos_desync_lag_rebuilds'),
          sel('nixos_desync_max_lag_rebuilds'),
          REBUILD_USED,
          sel('nixos_desync_behind_seconds'),
          sel('nixos_desync_max_behind_seconds'),
          TIME_USED,
          sel('nixos_desync_breached'),
          `time() - ${sel('nixos_desync_last_success_timestamp_seconds')}`,
        ],
        columns: {
          job: 'Job', instance: 'Host', desync: 'Desync',
          'Value #A': 'Lag (rebuilds)', 'Value #B': 'Budget (rebuilds)', 'Value #C': 'Rebuild budget used',
          'Value #D': 'Behind', 'Value #E': 'Time budget', 'Value #F': 'Time budget used',
          'Value #G': 'Breached', 'Value #H': 'Last passed gate',
        },
        overrides: {
          'Rebuild budget used': [col.unit('percentunit'), col.background(), col.thresholds(...BUDGET)],
          'Time budget used': [col.unit('percentunit'), col.background(), col.thresholds(...BUDGET)],
          Behind: [col.unit('s')],
          'Time budget': [col.unit('s')],
          'Last passed gate': [col.unit('s')],
          Breached: [col.mappings(NO_YES), col.background()],
          Host: [col.hostLink()],
        },
        sortBy: 'Rebuild budget used',
      }))
      .withPanel(timeseriesPanel({
        title: 'Rebuild budget used per desync',
        description: 'Lag as a fraction of the rebuild budget: 50% warns, 100% plus a failed gate is a breach.',
        w: 12, h: 8, unit: 'percentunit',
        queries: [range('A', REBUILD_USED, '{{instance}} {{desync}}')],
      }))
      .withPanel(timeseriesPanel({
        title: 'Time budget used per desync',
        description: 'Time behind the channel as a fraction of the time budget.',
        w: 12, h: 8, unit: 'percentunit',
        queries: [range('A', TIME_USED, '{{instance}} {{desync}}')],
      }))
      .withPanel(timeseriesPanel({
        title: 'Gate results',
        description: 'Gate attempts of all selected desyncs, by result.',
        w: 24, h: 7, bars: true,
        queries: [range('A', `sum by (result) (increase(${sel('nixos_desync_attempts_total')}[$__rate_interval]))`, '{{result}}')],
        colors: { failed: 'red', passed: 'green' },
      }))

      .withRow(row('Hosts'))
      .withPanel(tablePanel({
        title: 'Hosts',
        description: 'Per host: last successful run, result of the last run, pending reboot or activation, generation and desyncs.',
        w: 24, h: 9,
        exprs: [
          `time() - ${sel('nixos_desync_last_successful_run_timestamp_seconds')}`,
          sel('nixos_desync_last_run_success'),
          sel('nixos_desync_system_reboot_required'),
          sel('nixos_desync_system_activation_pending'),
          sel('nixos_desync_system_generation'),
          `count by (job, instance) (${sel('nixos_desync_lag_rebuilds')})`,
          `sum by (job, instance) (${sel('nixos_desync_breached')})`,
          sel('up'),
        ],
        columns: {
          job: 'Job', instance: 'Host',
          'Value #A': 'Last successful run', 'Value #B': 'Last run', 'Value #C': 'Reboot required',
          'Value #D': 'Activation pending', 'Value #E': 'Generation', 'Value #F': 'Desyncs',
          'Value #G': 'Breached', 'Value #H': 'Exporter up',
        },
        overrides: {
          // NixosDesyncUpgradeStale fires after 3 days; orange from a day and a half.
          'Last successful run': [col.unit('s'), col.background(), col.thresholds(['green', null], ['orange', 129600], ['red', 259200])],
          'Last run': [col.mappings(boolMapping({ text: 'failed', color: 'red', index: 1 }, { text: 'success', color: 'green', index: 0 })), col.background()],
          'Reboot required': [col.mappings(NO_YES), col.background()],
          'Activation pending': [col.mappings(NO_YES), col.colorText()],
          Breached: [col.background(), col.thresholds(...OK_RED)],
          'Exporter up': [col.mappings(boolMapping({ text: 'down', color: 'red', index: 1 }, { text: 'up', color: 'green', index: 0 })), col.background()],
          Host: [col.hostLink()],
        },
        sortBy: 'Last successful run',
      }))
      .withPanel(timeseriesPanel({
        title: 'Time since last successful run',
        description: 'NixosDesyncUpgradeStale fires above 3 days.',
        w: 12, h: 8, unit: 's',
        queries: [range('A', `time() - ${sel('nixos_desync_last_successful_run_timestamp_seconds')}`, '{{instance}}')],
      }))
      .withPanel(timeseriesPanel({
        title: 'Upgrade runs by result',
        description: 'Runs of all selected hosts, by result.',
        w: 12, h: 8, bars: true,
        queries: [range('A', `sum by (result) (increase(${sel('nixos_desync_runs_total')}[$__rate_interval]))`, '{{result}}')],
        colors: { failure: 'red', breach: 'dark-red', success: 'green' },
      })),
  );
}
