// Every metric the exporter serves, in one table: names are the fixed public interface of
// DESIGN.md ("Metrics"); docs/metrics.md documents the same table (a test keeps them in step).
export interface MetricDef {
  type: 'gauge' | 'counter';
  help: string;
  labels: readonly string[];
  collector: 'desyncs' | 'runs' | 'system' | 'pr_compat' | 'upgrade_unit' | 'flake' | 'exporter';
}


export const CATALOG = {
  // Per desync (label `desync`; the proposal's files from exporter.prDesyncDir too, the same way).
  nixos_desync_lag_rebuilds: { type: 'gauge', help: 'Rebuilds (runs) since the pin last followed the channel (desyncAge).', labels: ['desync'], collector: 'desyncs' },
  nixos_desync_max_lag_rebuilds: { type: 'gauge', help: 'Rebuild budget (maxLagRebuilds); absent when unlimited.', labels: ['desync'], collector: 'desyncs' },
  nixos_desync_behind_seconds: { type: 'gauge', help: 'Seconds since the first failed attempt after the last success (0 when not behind).', labels: ['desync'], collector: 'desyncs' },
  nixos_desync_max_behind_seconds: { type: 'gauge', help: 'Time budget (maxBehind) in seconds; absent without a time budget.', labels: ['desync'], collector: 'desyncs' },
  nixos_desync_breached: { type: 'gauge', help: '1 when the desync breached its budget (until it passes its gate again).', labels: ['desync'], collector: 'desyncs' },
  nixos_desync_in_sync: { type: 'gauge', help: '1 when the pin follows the channel (lag 0 and the last attempt passed).', labels: ['desync'], collector: 'desyncs' },
  nixos_desync_consecutive_failures: { type: 'gauge', help: 'Failed gate attempts since the last passed one.', labels: ['desync'], collector: 'desyncs' },
  nixos_desync_attempts_total: { type: 'counter', help: 'Gate attempts by result (persisted, survives restarts).', labels: ['desync', 'result'], collector: 'desyncs' },
  nixos_desync_last_attempt_timestamp_seconds: { type: 'gauge', help: 'Time of the last gate attempt (0 when never attempted).', labels: ['desync'], collector: 'desyncs' },
  nixos_desync_last_success_timestamp_seconds: { type: 'gauge', help: 'Time of the last passed gate attempt (0 when never passed).', labels: ['desync'], collector: 'desyncs' },
  nixos_desync_desync_runtime_failures_total: { type: 'counter', help: 'Health gate failures attributed to the desync (runtime hold-backs; persisted, survives restarts).', labels: ['desync'], collector: 'desyncs' },
  nixos_desync_desync_held_back: { type: 'gauge', help: 'One series per desync: 1 with stage="gate" or stage="health" while it is held back on its pin (its gate failed, or at runtime), 0 with stage="none" otherwise.', labels: ['desync', 'stage'], collector: 'desyncs' },
  nixos_desync_pin_info: { type: 'gauge', help: 'The pinned nixpkgs of a desync (value 1).', labels: ['desync', 'revision', 'path', 'source'], collector: 'desyncs' },
  // Runs.
  nixos_desync_runs_total: { type: 'counter', help: 'Upgrade runs by result (persisted, survives restarts).', labels: ['result'], collector: 'runs' },
  nixos_desync_last_run_timestamp_seconds: { type: 'gauge', help: 'Start time of the last run (0 when no run yet).', labels: [], collector: 'runs' },
  nixos_desync_last_run_success: { type: 'gauge', help: '1 when the last run succeeded; absent before the first run.', labels: [], collector: 'runs' },
  nixos_desync_last_successful_run_timestamp_seconds: { type: 'gauge', help: 'Finish time of the last successful run (0 when none yet).', labels: [], collector: 'runs' },
  nixos_desync_last_run_duration_seconds: { type: 'gauge', help: 'Duration of the last run; absent before the first run.', labels: [], collector: 'runs' },
  nixos_desync_last_run_stage_duration_seconds: { type: 'gauge', help: 'Duration of each stage the last run went through.', labels: ['stage'], collector: 'runs' },
  nixos_desync_run_in_progress: { type: 'gauge', help: '1 while an upgrade run is in flight (its journal exists and its process is alive).', labels: [], collector: 'runs' },
  nixos_desync_rollbacks_total: { type: 'counter', help: 'Rollbacks after a failed activation or health gate, by reason (persisted).', labels: ['reason'], collector: 'runs' },
  nixos_desync_last_rollback_timestamp_seconds: { type: 'gauge', help: 'Time of the last rollback (0 when never rolled back).', labels: [], collector: 'runs' },
  nixos_desync_last_health_check_success: { type: 'gauge', help: '1 when the last health gate passed (0 while the running system is unverified); absent before the first health gate.', labels: [], collector: 'runs' },
  nixos_desync_system_unverified: { type: 'gauge', help: '1 when the running system is not a verified one (activated and never confirmed healthy, or a failed rollback) and no run is in progress.', labels: [], collector: 'runs' },
  nixos_desync_state_corrupt_files: { type: 'gauge', help: 'Corrupt state files moved aside under the state directory (inspect, then delete them).', labels: [], collector: 'runs' },
  // Rollout (config `rollout`; rejected_candidate_info on every host).
  nixos_desync_rollout_info: { type: 'gauge', help: "The host's rollout ring (value 1; only with rollout).", labels: ['ring'], collector: 'runs' },
  nixos_desync_rollout_held: { type: 'gauge', help: '1 with the reason (soak, no_data, unreachable) while runs are held by the rollout; absent otherwise.', labels: ['reason'], collector: 'runs' },
  nixos_desync_rollout_held_since_timestamp_seconds: { type: 'gauge', help: 'Start of the current streak of held runs; absent when not held.', labels: [], collector: 'runs' },
  nixos_desync_rollout_healthy_since_timestamp_seconds: { type: 'gauge', help: 'Since when the running system, built by the loop from nixpkgs revision `revision`, has run it (first commit of that revision); absent otherwise.', labels: ['revision'], collector: 'runs' },
  nixos_desync_rejected_candidate_info: { type: 'gauge', help: 'A candidate a rollback rejected here (value 1 while rejected; the newest 2).', labels: ['source', 'revision'], collector: 'runs' },
  // System.
  nixos_desync_system_generation: { type: 'gauge', help: 'Current system profile generation number.', labels: [], collector: 'system' },
  nixos_desync_system_generation_timestamp_seconds: { type: 'gauge', help: 'Creation time of the current system profile generation.', labels: [], collector: 'system' },
  nixos_desync_system_generations: { type: 'gauge', help: 'Number of system profile generations (system-N-link).', labels: [], collector: 'system' },
  nixos_desync_system_reboot_required: { type: 'gauge', help: '1 when the booted kernel, initrd or kernel modules differ from the current system.', labels: [], collector: 'system' },
  nixos_desync_system_source_info: { type: 'gauge', help: 'Sources the running system was built from, as recorded by the loop (value 1): source="nixpkgs", and a desync whose running revision differs from its committed pin.', labels: ['source', 'revision'], collector: 'system' },
  nixos_desync_system_activation_pending: { type: 'gauge', help: '1 when the newest profile generation is not the running system.', labels: [], collector: 'system' },
  nixos_desync_system_nixpkgs_info: { type: 'gauge', help: "The running system's nixpkgs, from its nixos-version (value 1).", labels: ['revision', 'version'], collector: 'system' },
  nixos_desync_system_nixpkgs_timestamp_seconds: { type: 'gauge', help: "Date of the running system's nixpkgs commit (nixos-version YY.MM.YYYYMMDD, else the flake lock's lastModified).", labels: [], collector: 'system' },
  // Reboots (reboot.*): what a reboot would apply, when it may happen, and the boot's health gate.
  nixos_desync_system_reboot_triggers: { type: 'gauge', help: 'Reboot triggers in which the boot default differs from the booted system (value 1 per trigger; absent when none).', labels: ['trigger'], collector: 'system' },
  nixos_desync_reboot_blocked: { type: 'gauge', help: 'While a reboot is required: 1 for what keeps it from happening now (window, alerts, disabled, unreachable).', labels: ['reason'], collector: 'system' },
  nixos_desync_reboot_window_next_timestamp_seconds: { type: 'gauge', help: 'Start of the next reboot window (absent without reboot.window).', labels: [], collector: 'system' },
  nixos_desync_last_boot_health_success: { type: 'gauge', help: '1 when the last verify-boot found the booted system healthy; absent before the first.', labels: [], collector: 'system' },
  // Monitoring (any host): exporter.upgradeUnit and exporter.flakeLock.
  nixos_desync_upgrade_unit_last_run_success: { type: 'gauge', help: "1 when the upgrade unit's last finished run succeeded; absent before its first run.", labels: ['unit'], collector: 'upgrade_unit' },
  nixos_desync_upgrade_unit_last_run_timestamp_seconds: { type: 'gauge', help: "Start time of the upgrade unit's last run; absent before its first run.", labels: ['unit'], collector: 'upgrade_unit' },
  nixos_desync_upgrade_unit_last_run_duration_seconds: { type: 'gauge', help: "Duration of the upgrade unit's last finished run; absent before its first run.", labels: ['unit'], collector: 'upgrade_unit' },
  nixos_desync_upgrade_unit_running: { type: 'gauge', help: '1 while the upgrade unit is running.', labels: ['unit'], collector: 'upgrade_unit' },
  nixos_desync_flake_input_last_modified_timestamp_seconds: { type: 'gauge', help: 'Date of the commit each direct input of exporter.flakeLock is locked to.', labels: ['input'], collector: 'flake' },
  // Exporter.
  nixos_desync_build_info: { type: 'gauge', help: 'Exporter build information (value 1).', labels: ['version'], collector: 'exporter' },
  nixos_desync_collector_success: { type: 'gauge', help: '1 when the collector read all of its sources in this scrape.', labels: ['collector'], collector: 'exporter' },
  nixos_desync_collector_duration_seconds: { type: 'gauge', help: 'Time the collector took in this scrape.', labels: ['collector'], collector: 'exporter' },
} as const satisfies Record<string, MetricDef>;

export type MetricName = keyof typeof CATALOG;
