// Every metric name of the product contract (shared DESIGN.md, "Metrics"), in full.
// Alert rules and dashboards may only use these (plus Prometheus' own `up`); the
// exporter's output will be checked against the same list.

/** Per-desync metrics: all carry the label `desync`. */
export const DESYNC_METRICS = [
  'nixos_desync_lag_rebuilds',
  'nixos_desync_max_lag_rebuilds', // absent when the rebuild budget is unlimited
  'nixos_desync_behind_seconds',
  'nixos_desync_max_behind_seconds', // absent without a time budget
  'nixos_desync_breached',
  'nixos_desync_in_sync',
  'nixos_desync_consecutive_failures',
  'nixos_desync_attempts_total', // {result="passed|failed"}
  'nixos_desync_last_attempt_timestamp_seconds',
  'nixos_desync_last_success_timestamp_seconds',
  'nixos_desync_pin_info', // {revision,path}, value 1
  'nixos_desync_desync_runtime_failures_total',
  'nixos_desync_desync_held_back', // {stage="gate|health"} 1 while held back, {stage="none"} 0 otherwise
] as const;

export const RUN_METRICS = [
  'nixos_desync_runs_total', // {result="success|failure|breach"}
  'nixos_desync_last_run_timestamp_seconds',
  'nixos_desync_last_run_success',
  'nixos_desync_last_successful_run_timestamp_seconds',
  'nixos_desync_last_run_duration_seconds',
  'nixos_desync_last_run_stage_duration_seconds', // {stage}
  'nixos_desync_run_in_progress',
  'nixos_desync_rollbacks_total', // {reason="activation|health"}
  'nixos_desync_last_rollback_timestamp_seconds',
  'nixos_desync_last_health_check_success', // absent before the first health gate
  'nixos_desync_system_unverified',
  'nixos_desync_state_corrupt_files', // not in the contract: corrupt state files moved aside
] as const;

export const SYSTEM_METRICS = [
  'nixos_desync_system_generation',
  'nixos_desync_system_generation_timestamp_seconds',
  'nixos_desync_system_generations',
  'nixos_desync_system_reboot_required',
  'nixos_desync_system_activation_pending',
  'nixos_desync_system_nixpkgs_info', // {revision,version}, value 1
  'nixos_desync_system_nixpkgs_timestamp_seconds',
  'nixos_desync_system_source_info', // {source,revision}, value 1
] as const;

/** Reboots (reboot.*). */
export const REBOOT_METRICS = [
  'nixos_desync_system_reboot_triggers', // {trigger}, value 1 per trigger that differs
  'nixos_desync_reboot_blocked', // {reason="window|alerts|disabled|unreachable"}
  'nixos_desync_reboot_window_next_timestamp_seconds',
  'nixos_desync_last_boot_health_success', // absent before the first verify-boot
] as const;

/** Monitoring, on any host: exporter.upgradeUnit and exporter.flakeLock. */
export const MONITOR_METRICS = [
  'nixos_desync_upgrade_unit_last_run_success', // {unit}
  'nixos_desync_upgrade_unit_last_run_timestamp_seconds', // {unit}
  'nixos_desync_upgrade_unit_last_run_duration_seconds', // {unit}
  'nixos_desync_upgrade_unit_running', // {unit}
  'nixos_desync_flake_input_last_modified_timestamp_seconds', // {input}
] as const;

export const EXPORTER_METRICS = [
  'nixos_desync_build_info', // {version}
  'nixos_desync_collector_success', // {collector}
  'nixos_desync_collector_duration_seconds', // {collector}
] as const;

/** Fleet rollout (config `rollout`; rejected_candidate_info on every host). */
export const ROLLOUT_METRICS = [
  'nixos_desync_rollout_info', // {ring}, value 1
  'nixos_desync_rollout_held', // {reason="soak|no_data|unreachable"}
  'nixos_desync_rollout_held_since_timestamp_seconds',
  'nixos_desync_rollout_healthy_since_timestamp_seconds', // {revision}
  'nixos_desync_rejected_candidate_info', // {source,revision}, value 1
] as const;

export const METRIC_NAMES: readonly string[] = [
  ...DESYNC_METRICS,
  ...ROLLOUT_METRICS,
  ...RUN_METRICS,
  ...SYSTEM_METRICS,
  ...REBOOT_METRICS,
  ...MONITOR_METRICS,
  ...EXPORTER_METRICS,
];

/**
 * Label names (besides the target's `job`/`instance`) and, where the rules or dashboards
 * depend on them, label values that the alert rules and dashboards assume.
 */
export const ASSUMED_LABELS: Readonly<Record<string, Readonly<Record<string, readonly string[] | null>>>> = {
  ...Object.fromEntries(DESYNC_METRICS.map((m) => [m, { desync: null }])),
  nixos_desync_attempts_total: { desync: null, result: ['passed', 'failed'] },
  nixos_desync_pin_info: { desync: null, revision: null, path: null },
  nixos_desync_desync_held_back: { desync: null, stage: ['gate', 'health', 'none'] },
  nixos_desync_runs_total: { result: ['success', 'failure', 'breach', 'rolled_back', 'rollback_failed', 'held'] },
  nixos_desync_rollbacks_total: { reason: ['activation', 'health'] },
  nixos_desync_system_source_info: { source: null, revision: null },
  nixos_desync_last_run_stage_duration_seconds: {
    stage: ['fetch', 'candidate', 'rollout', 'gate', 'system_build', 'activate', 'health', 'commit'],
  },
  nixos_desync_system_nixpkgs_info: { revision: null, version: null },
  nixos_desync_rollout_info: { ring: null },
  nixos_desync_rollout_held: { reason: ['soak', 'no_data', 'unreachable'] },
  nixos_desync_rollout_healthy_since_timestamp_seconds: { revision: null },
  nixos_desync_rejected_candidate_info: { source: ['nixpkgs'], revision: null },
  nixos_desync_system_reboot_triggers: { trigger: ['kernel', 'initrd', 'kernel-modules', 'firmware', 'kernel-params', 'switch-inhibitors'] },
  nixos_desync_reboot_blocked: { reason: ['window', 'alerts', 'disabled', 'unreachable'] },
  ...Object.fromEntries(MONITOR_METRICS.filter((m) => m.startsWith('nixos_desync_upgrade_unit_')).map((m) => [m, { unit: null }])),
  nixos_desync_flake_input_last_modified_timestamp_seconds: { input: null },
  nixos_desync_build_info: { version: null },
  nixos_desync_collector_success: { collector: ['desyncs', 'runs', 'system', 'pr_compat', 'upgrade_unit', 'flake'] },
  nixos_desync_collector_duration_seconds: { collector: ['desyncs', 'runs', 'system', 'pr_compat', 'upgrade_unit', 'flake'] },
};
