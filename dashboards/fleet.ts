// The fleet dashboard (uid nixos-desync-fleet): every host and desync at a glance.
// Generated into dashboards/nixos-desync-fleet.json by `npm run dashboards`.
import { BigValueColorMode } from '@grafana/grafana-foundation-sdk/common';
import type { Dashboard } from '@grafana/grafana-foundation-sdk/dashboard';
import {
  FAILED_SUCCESS, NO_YES, OK_YELLOW, OUT_OF_DATE, STALE, baseDashboard, boolMapping, col, dashboardLink,
  barGaugePanel, instant, range, render, row, sel, statPanel, tablePanel, timeseriesPanel, type Step,
} from './panels.js';

const OK_RED: Step[] = [['green', null], ['red', 1]];
const OK_ORANGE: Step[] = [['green', null], ['orange', 1]];
/** Budget used: half warns (NixosDesyncLagging), all of it is the breach line. */
const BUDGET: Step[] = [['green', null], ['orange', 0.5], ['red', 1]];

/** Share of the rebuild and the time budget used, per desync (absent when unlimited). */
const REBUILD_USED = `${sel('nixos_desync_lag_rebuilds')} / ${sel('nixos_desync_max_lag_rebuilds')}`;
const TIME_USED = `${sel('nixos_desync_behind_seconds')} / ${sel('nixos_desync_max_behind_seconds')}`;
/** Only the desyncs that use some budget (the sparse recording rule), not every host × desync. */
const usingBudget = (expr: string): string => `(${expr}) and on (job, instance, desync) ${sel('nixos_desync:budget_used:ratio')}`;

/**
 * A count from the fleet recording rules (alerts/nixos-desync-fleet.rules.yml), summed over
 * the selected jobs: one small series per job, so the panel costs the same at any fleet size.
 */
const rollup = (what: string): string => `sum(job:nixos_desync_${what}:count{job=~"$job"})`;

function countStat(title: string, description: string, what: string, steps: Step[]) {
  return statPanel({
    title, description: `${description} (recording rule job:nixos_desync_${what}:count; follows the job selection, not the instance one.)`,
    w: 4, h: 4,
    query: instant('A', `${rollup(what)} or vector(0)`),
    steps,
    colorMode: BigValueColorMode.Background,
  });
}

const NEUTRAL: Step[] = [['blue', null]];

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
      .withPanel(countStat('Hosts', 'Exporters serving metrics.', 'hosts', NEUTRAL))
      .withPanel(countStat('Hosts with a breach',
        'Hosts with a desync that failed its gate after using up its budget (NixosDesyncMaxAgeBreached pages).',
        'hosts_breached', OK_RED))
      .withPanel(countStat('Hosts lagging',
        'Hosts with a desync, not breached, at 50% or more of a budget (NixosDesyncLagging).',
        'hosts_lagging', OK_ORANGE))
      .withPanel(countStat('Hosts failing upgrades',
        'Hosts whose last loop run, or whose monitored upgrade unit (nixos-upgrade.service), failed (NixosDesyncUpgradeFailing).',
        'hosts_failing', OK_RED))
      .withPanel(countStat('Hosts stale',
        'Hosts without a successful loop run, or without an upgrade-unit run, for 3 days (NixosDesyncUpgradeStale).',
        'hosts_stale', OK_ORANGE))
      .withPanel(countStat('Hosts rolled back (24h)',
        'Hosts whose activation or health gate failed and were rolled back in the last 24 hours (NixosDesyncRolledBack).',
        'hosts_rolled_back', OK_ORANGE))
      .withPanel(countStat('Hosts out of date',
        "Hosts whose running system's nixpkgs is more than 14 days old (NixosDesyncNixpkgsOutOfDate).",
        'hosts_out_of_date', OK_ORANGE))
      .withPanel(countStat('Hosts needing a reboot',
        'Hosts whose booted kernel, initrd or modules differ from the current system.',
        'hosts_reboot_required', OK_YELLOW))
      .withPanel(countStat('Exporters down',
        'Known nixos-desync exporters Prometheus cannot scrape (NixosDesyncExporterDown).',
        'exporters_down', OK_RED))
      .withPanel(countStat('Breached desyncs',
        'Host × desync pairs in breach.',
        'desyncs_breached', OK_RED))
      .withPanel(countStat('Desyncs ≥ 50% of a budget',
        'Host × desync pairs, not breached, at 50% or more of their rebuild or time budget.',
        'desyncs_lagging', OK_ORANGE))
      .withPanel(countStat('Desyncs behind the channel',
        'Host × desync pairs whose pin is not the current channel revision.',
        'desyncs_behind', OK_YELLOW))
      .withPanel(timeseriesPanel({
        title: 'Hosts by state',
        description: 'The fleet recording rules over time (summed over the selected jobs). A host can be in several states.',
        w: 24, h: 8,
        queries: [
          range('A', rollup('hosts_breached'), 'breached'),
          range('B', rollup('hosts_lagging'), 'lagging'),
          range('C', rollup('hosts_failing'), 'failing'),
          range('D', rollup('hosts_stale'), 'stale'),
          range('E', rollup('hosts_rolled_back'), 'rolled back'),
          range('F', rollup('hosts_out_of_date'), 'out of date'),
          range('G', rollup('exporters_down'), 'exporter down'),
        ],
        colors: { breached: 'red', lagging: 'orange', failing: 'dark-red', stale: 'yellow', 'rolled back': 'purple', 'out of date': 'blue', 'exporter down': 'dark-purple' },
      }))

      .withRow(row('Desyncs: lag against budget'))
      .withPanel(tablePanel({
        title: 'Desyncs using a budget',
        description: 'One row per host and desync that uses any of its budget (the recording rule nixos_desync:budget_used:ratio: desyncs in sync are left out, so the table stays small in a large fleet): lag in rebuilds and time against each budget (empty budget = unlimited), whether the desync is breached, and how long ago its gate last passed.',
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
        ].map(usingBudget),
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
        title: 'Budget used: the 20 desyncs closest to a breach',
        description: 'The larger of the rebuild and the time budget used, for the 20 desyncs that use the most (nixos_desync:budget_used:ratio): 50% warns, 100% plus a failed gate is a breach. The host dashboard shows every desync of one host.',
        w: 24, h: 8, unit: 'percentunit',
        queries: [range('A', `topk(20, ${sel('nixos_desync:budget_used:ratio')})`, '{{instance}} {{desync}}')],
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
        description: "Per host: last successful run, result of the last run, pending reboot or activation, generation and desyncs, the running system's nixpkgs age and the monitored upgrade unit's last run (hosts without the loop show only those).",
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
          `time() - ${sel('nixos_desync_system_nixpkgs_timestamp_seconds')}`,
          `min by (job, instance) (${sel('nixos_desync_upgrade_unit_last_run_success')})`,
        ],
        columns: {
          job: 'Job', instance: 'Host',
          'Value #A': 'Last successful run', 'Value #B': 'Last run', 'Value #C': 'Reboot required',
          'Value #D': 'Activation pending', 'Value #E': 'Generation', 'Value #F': 'Desyncs',
          'Value #G': 'Breached', 'Value #H': 'Exporter up', 'Value #I': 'nixpkgs age', 'Value #J': 'Upgrade unit',
        },
        overrides: {
          'Last successful run': [col.unit('s'), col.background(), col.thresholds(...STALE)],
          'Last run': [col.mappings(FAILED_SUCCESS), col.background()],
          'Reboot required': [col.mappings(NO_YES), col.background()],
          'Activation pending': [col.mappings(NO_YES), col.colorText()],
          Breached: [col.background(), col.thresholds(...OK_RED)],
          'Exporter up': [col.mappings(boolMapping({ text: 'down', color: 'red', index: 1 }, { text: 'up', color: 'green', index: 0 })), col.background()],
          'nixpkgs age': [col.unit('s'), col.background(), col.thresholds(...OUT_OF_DATE)],
          'Upgrade unit': [col.mappings(FAILED_SUCCESS), col.background()],
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
        colors: { failure: 'red', breach: 'dark-red', success: 'green', held: 'blue' },
      }))

      // Fleet rollouts (config `rollout`, alerts/nixos-desync-rollout.rules.yml): per-host
      // series and the per-host recording rule, so the job and host pickers apply here too.
      .withRow(row('Rollout rings'))
      .withPanel(barGaugePanel({
        title: 'Hosts per ring',
        description: 'Hosts of a fleet rollout by ring (rollout.ring; 0 = canaries, which adopt a new revision at once).',
        w: 6, h: 8, unit: 'none', steps: NEUTRAL,
        query: instant('A', `count by (ring) (${sel('nixos_desync_rollout_info')})`, { legend: 'ring {{ring}}' }),
      }))
      .withPanel(tablePanel({
        title: 'Which revision each ring runs',
        description: 'Per ring and nixpkgs revision: hosts that run it healthy (the loop built it, it passed its health gate) and the longest any of them has run it. A host of ring r adopts a revision once rollout.minHosts hosts of ring r−1 have run it for rollout.soak (recording rule nixos_desync:rollout_healthy_seconds).',
        w: 10, h: 8,
        exprs: [
          `count by (ring, revision) (${sel('nixos_desync:rollout_healthy_seconds')})`,
          `max by (ring, revision) (${sel('nixos_desync:rollout_healthy_seconds')})`,
        ],
        columns: { ring: 'Ring', revision: 'Revision', 'Value #A': 'Healthy hosts', 'Value #B': 'Longest soak' },
        overrides: { 'Longest soak': [col.unit('s')] },
        sortBy: 'Ring',
      }))
      .withPanel(timeseriesPanel({
        title: 'Held hosts by ring and reason',
        description: 'Hosts whose upgrade runs the rollout holds: soak (ring r−1 has not run the revision long enough), no_data (Prometheus knows no host of ring r−1), unreachable (the host cannot query Prometheus). NixosDesyncRolloutHeld fires after a day.',
        w: 8, h: 8, bars: true,
        queries: [range('A', `count by (ring, reason) ((${sel('nixos_desync_rollout_held')} == 1) * on (job, instance) group_left (ring) ${sel('nixos_desync_rollout_info')})`, 'ring {{ring}}: {{reason}}')],
      }))
      .withPanel(tablePanel({
        title: 'Fleet-wide rejections',
        description: 'Candidates a host rejected after a rollback (its 2 newest): every host of the rollout that fetches one of these revisions skips it, naming the host here.',
        w: 24, h: 6,
        exprs: [sel('nixos_desync_rejected_candidate_info')],
        columns: { job: 'Job', instance: 'Host', revision: 'Rejected revision' },
        hide: ['source', 'Value #A'],
        overrides: { Host: [col.hostLink()] },
      })),
  );
}
