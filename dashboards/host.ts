// The host dashboard (uid nixos-desync-host): one host's pins, lag, runs and system.
// Generated into dashboards/nixos-desync-host.json by `npm run dashboards`.
import { BigValueColorMode, BigValueTextMode } from '@grafana/grafana-foundation-sdk/common';
import { MappingType, type Dashboard, type ValueMapping } from '@grafana/grafana-foundation-sdk/dashboard';
import {
  FAILED_SUCCESS, NO_YES, OK_YELLOW, OUT_OF_DATE, STALE, barGaugePanel, baseDashboard, boolMapping, col,
  dashboardLink, instant, range, render, row, sel, statPanel, tablePanel, timeseriesPanel, type Step,
} from './panels.js';
import {
  corruptFilesStat, healthGateStat, healthOverTimePanel, lastRollbackStat, rollbacksPanel, runningSourcesTable, unverifiedStat,
} from './host-safety.js';

const TEXT: Step[] = [['text', null]];
// nixos_desync_desync_held_back: 1 while held (orange: lagging on purpose), and its stage label.
const HELD = boolMapping({ text: 'no', color: 'green', index: 0 }, { text: 'yes', color: 'orange', index: 1 });
const HELD_STAGE: ValueMapping[] = [{
  type: MappingType.ValueToText,
  options: { none: { text: '-', index: 0 }, gate: { text: 'its gate', color: 'yellow', index: 1 }, health: { text: 'runtime', color: 'orange', index: 2 } },
}];

export function hostDashboard(): Dashboard {
  return render(
    baseDashboard({
      uid: 'nixos-desync-host',
      title: 'nixos-desync / Host',
      description: 'One host: pins and revisions, lag over time, health gate and rollbacks, run outcomes and stage durations, generations.',
      multi: false,
    })
      .link(dashboardLink('Fleet', 'nixos-desync-fleet'))
      .withRow(row('Host'))
      .withPanel(statPanel({
        title: 'Last run', description: 'Result of the most recent upgrade run.', w: 4, h: 4,
        query: instant('A', sel('nixos_desync_last_run_success')),
        steps: [['red', null], ['green', 1]],
        mappings: FAILED_SUCCESS,
      }))
      .withPanel(statPanel({
        title: 'Last successful run', description: 'Time since the last successful upgrade run.', w: 4, h: 4,
        query: instant('A', `time() - ${sel('nixos_desync_last_successful_run_timestamp_seconds')}`),
        unit: 's',
        steps: STALE,
      }))
      .withPanel(statPanel({
        title: 'Run in progress', description: 'Whether an upgrade run is running now.', w: 4, h: 4,
        query: instant('A', sel('nixos_desync_run_in_progress')),
        steps: TEXT,
        mappings: boolMapping({ text: 'idle', index: 0 }, { text: 'running', color: 'blue', index: 1 }),
      }))
      .withPanel(statPanel({
        title: 'System generation', description: 'Current system profile generation.', w: 4, h: 4,
        query: instant('A', sel('nixos_desync_system_generation')),
        steps: TEXT,
      }))
      .withPanel(statPanel({
        title: 'Reboot required', description: 'Booted kernel, initrd or modules differ from the current system.', w: 4, h: 4,
        query: instant('A', sel('nixos_desync_system_reboot_required')),
        steps: OK_YELLOW, mappings: NO_YES,
      }))
      .withPanel(statPanel({
        title: 'Activation pending', description: 'The newest system generation is not the running system.', w: 4, h: 4,
        query: instant('A', sel('nixos_desync_system_activation_pending')),
        steps: OK_YELLOW, mappings: NO_YES,
      }))

      .withRow(row('Health gate, rollbacks and state'))
      .withPanel(unverifiedStat())
      .withPanel(healthGateStat())
      .withPanel(lastRollbackStat())
      .withPanel(corruptFilesStat())
      .withPanel(runningSourcesTable())
      .withPanel(rollbacksPanel())
      .withPanel(healthOverTimePanel())

      .withRow(row('Upgrades and nixpkgs (any host, loop or not)'))
      .withPanel(statPanel({
        title: 'nixpkgs age',
        description: "Age of the running system's nixpkgs commit (nixos-version date, else the flake lock's). NixosDesyncNixpkgsOutOfDate fires above 14 days.",
        w: 4, h: 4,
        query: instant('A', `time() - ${sel('nixos_desync_system_nixpkgs_timestamp_seconds')}`),
        unit: 's',
        steps: OUT_OF_DATE,
      }))
      .withPanel(statPanel({
        title: 'Running nixpkgs', description: "The running system's NixOS version and nixpkgs revision (from its nixos-version).", w: 4, h: 4,
        query: instant('A', sel('nixos_desync_system_nixpkgs_info'), { legend: '{{version}} {{revision}}' }),
        steps: TEXT,
        textMode: BigValueTextMode.Name,
      }))
      .withPanel(statPanel({
        title: 'Upgrade unit: last run',
        description: 'Result of the last finished run of exporter.upgradeUnit (e.g. nixos-upgrade.service of system.autoUpgrade).',
        w: 4, h: 4,
        query: instant('A', sel('nixos_desync_upgrade_unit_last_run_success'), { legend: '{{unit}}' }),
        steps: [['red', null], ['green', 1]],
        mappings: FAILED_SUCCESS,
      }))
      .withPanel(statPanel({
        title: 'Upgrade unit: last run started', description: 'Time since the last run of the upgrade unit started.', w: 4, h: 4,
        query: instant('A', `time() - ${sel('nixos_desync_upgrade_unit_last_run_timestamp_seconds')}`, { legend: '{{unit}}' }),
        unit: 's',
        steps: STALE,
      }))
      .withPanel(statPanel({
        title: 'Upgrade unit: duration', description: 'Duration of the last finished run of the upgrade unit.', w: 4, h: 4,
        query: instant('A', sel('nixos_desync_upgrade_unit_last_run_duration_seconds'), { legend: '{{unit}}' }),
        unit: 's',
        steps: TEXT,
      }))
      .withPanel(statPanel({
        title: 'Upgrade unit: running', description: 'Whether the upgrade unit is running now.', w: 4, h: 4,
        query: instant('A', sel('nixos_desync_upgrade_unit_running'), { legend: '{{unit}}' }),
        steps: TEXT,
        mappings: boolMapping({ text: 'idle', index: 0 }, { text: 'running', color: 'blue', index: 1 }),
      }))
      .withPanel(barGaugePanel({
        title: 'Flake inputs: age of the locked commit',
        description: 'For each direct input of exporter.flakeLock, the age of the commit it is locked to. NixosDesyncFlakeInputOutOfDate fires for nixpkgs* inputs above 30 days.',
        w: 24, h: 6,
        query: instant('A', `time() - ${sel('nixos_desync_flake_input_last_modified_timestamp_seconds')}`, { legend: '{{input}}' }),
        unit: 's',
        steps: [['green', null], ['orange', 1209600], ['red', 2592000]],
      }))

      .withRow(row('Pins'))
      .withPanel(tablePanel({
        title: 'Pins and revisions',
        description: "Each desync's pinned nixpkgs (revision and store path, as in /var/lib/nixos-desync/pins/<name>.nix) and its lag.",
        w: 24, h: 8,
        exprs: [
          sel('nixos_desync_pin_info'),
          sel('nixos_desync_lag_rebuilds'),
          sel('nixos_desync_max_lag_rebuilds'),
          sel('nixos_desync_behind_seconds'),
          sel('nixos_desync_in_sync'),
          sel('nixos_desync_breached'),
          sel('nixos_desync_consecutive_failures'),
          `time() - ${sel('nixos_desync_last_attempt_timestamp_seconds')}`,
        ],
        hide: ['job', 'instance', 'Value #A'],
        columns: {
          desync: 'Desync', revision: 'Revision', path: 'Store path',
          'Value #B': 'Lag (rebuilds)', 'Value #C': 'Budget (rebuilds)', 'Value #D': 'Behind',
          'Value #E': 'In sync', 'Value #F': 'Breached', 'Value #G': 'Consecutive failures', 'Value #H': 'Last attempt',
        },
        overrides: {
          Behind: [col.unit('s')],
          'Last attempt': [col.unit('s')],
          'In sync': [col.mappings(boolMapping({ text: 'no', color: 'yellow', index: 1 }, { text: 'yes', color: 'green', index: 0 })), col.colorText()],
          Breached: [col.mappings(NO_YES), col.background()],
        },
      }))
      .withPanel(timeseriesPanel({
        title: 'Lag (rebuilds)',
        description: 'Rebuilds since each desync last followed the channel, and its budget (dashed).',
        w: 12, h: 8,
        queries: [
          range('A', sel('nixos_desync_lag_rebuilds'), '{{desync}}'),
          range('B', sel('nixos_desync_max_lag_rebuilds'), '{{desync}} budget'),
        ],
        dashedRefId: 'B',
      }))
      .withPanel(timeseriesPanel({
        title: 'Behind the channel',
        description: "Time since each desync's first failed gate after its last success, and its time budget (dashed).",
        w: 12, h: 8, unit: 's',
        queries: [
          range('A', sel('nixos_desync_behind_seconds'), '{{desync}}'),
          range('B', sel('nixos_desync_max_behind_seconds'), '{{desync}} budget'),
        ],
        dashedRefId: 'B',
      }))
      .withPanel(timeseriesPanel({
        title: 'Gate attempts', description: 'Gate attempts per desync and result.', w: 12, h: 8, bars: true,
        queries: [range('A', `sum by (desync, result) (increase(${sel('nixos_desync_attempts_total')}[$__rate_interval]))`, '{{desync}} {{result}}')],
      }))
      .withPanel(timeseriesPanel({
        title: 'Consecutive gate failures', description: 'Failed gates in a row per desync.', w: 12, h: 8,
        queries: [range('A', sel('nixos_desync_consecutive_failures'), '{{desync}}')],
      }))
      .withPanel(tablePanel({
        title: 'Held back',
        description: 'Why each desync stays on its pin: its gate failed, or held back at runtime (its units or healthChecks failed once activated; tried again after health.retryAfter, `nixos-desync status` says when) — and the health gate failures attributed to it.',
        w: 12, h: 8,
        exprs: [
          sel('nixos_desync_desync_held_back'),
          // The stage label joined in: one row per desync in the merged table.
          `${sel('nixos_desync_desync_runtime_failures_total')} + on (job, instance, desync) group_left (stage) (0 * ${sel('nixos_desync_desync_held_back')})`,
        ],
        hide: ['job', 'instance'],
        columns: { desync: 'Desync', stage: 'Held back by', 'Value #A': 'Held back', 'Value #B': 'Runtime failures' },
        overrides: {
          'Held back': [col.mappings(HELD), col.background()],
          'Held back by': [col.mappings(HELD_STAGE), col.colorText()],
        },
      }))
      .withPanel(timeseriesPanel({
        title: 'Runtime failures', description: 'Health gate failures attributed to each desync (each one a runtime hold-back).', w: 12, h: 8, bars: true,
        queries: [range('A', `sum by (desync) (increase(${sel('nixos_desync_desync_runtime_failures_total')}[$__rate_interval]))`, '{{desync}}')],
      }))

      .withRow(row('Runs'))
      .withPanel(timeseriesPanel({
        title: 'Run outcomes', description: 'Upgrade runs by result.', w: 12, h: 8, bars: true,
        queries: [range('A', `sum by (result) (increase(${sel('nixos_desync_runs_total')}[$__rate_interval]))`, '{{result}}')],
        colors: { failure: 'red', breach: 'dark-red', success: 'green' },
      }))
      .withPanel(barGaugePanel({
        title: 'Last run: stage durations',
        description: 'How long each stage of the last run took (fetch, candidate, gate, system_build, commit, activate).',
        w: 12, h: 8, unit: 's',
        query: instant('A', sel('nixos_desync_last_run_stage_duration_seconds'), { legend: '{{stage}}' }),
        steps: [['blue', null]],
      }))
      .withPanel(timeseriesPanel({
        title: 'Stage durations', description: 'Stage durations of the latest run at each point in time.',
        w: 12, h: 8, unit: 's', stacked: true,
        queries: [range('A', sel('nixos_desync_last_run_stage_duration_seconds'), '{{stage}}')],
      }))
      .withPanel(timeseriesPanel({
        title: 'Run duration', description: 'Duration of the latest run at each point in time.', w: 12, h: 8, unit: 's',
        queries: [range('A', sel('nixos_desync_last_run_duration_seconds'), 'last run')],
      }))

      .withRow(row('System and exporter'))
      .withPanel(timeseriesPanel({
        title: 'System generation',
        description: 'Current system generation and number of generations in the profile.',
        w: 12, h: 8, min: null,
        queries: [
          range('A', sel('nixos_desync_system_generation'), 'current generation'),
          range('B', sel('nixos_desync_system_generations'), 'generations kept'),
        ],
      }))
      .withPanel(timeseriesPanel({
        title: 'Time since generation was built', description: 'Age of the current system generation.',
        w: 12, h: 8, unit: 's',
        queries: [range('A', `time() - ${sel('nixos_desync_system_generation_timestamp_seconds')}`, 'age')],
      }))
      .withPanel(timeseriesPanel({
        title: 'Collector success',
        description: '1 when a collector read its source on the last scrape (NixosDesyncCollectorFailing).',
        w: 8, h: 7,
        queries: [range('A', sel('nixos_desync_collector_success'), '{{collector}}')],
      }))
      .withPanel(timeseriesPanel({
        title: 'Collector duration', description: 'Time each collector took on the last scrape.', w: 8, h: 7, unit: 's',
        queries: [range('A', sel('nixos_desync_collector_duration_seconds'), '{{collector}}')],
      }))
      .withPanel(statPanel({
        title: 'Exporter version', description: 'Version of the nixos-desync exporter.', w: 8, h: 7,
        query: instant('A', sel('nixos_desync_build_info'), { legend: '{{version}}' }),
        steps: TEXT,
        colorMode: BigValueColorMode.None,
        textMode: BigValueTextMode.Name,
      })),
  );
}
