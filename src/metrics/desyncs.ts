// Per-desync metrics from state.json (and the pin files when it is lost), derived from the
// same status model as `nixos-desync status` so the two never disagree.
import { buildDesyncStatus, desyncNames } from '../views/status.js';
import type { MachineState } from '../state/model.js';
import { bool, unixSeconds, type Collector, type Emit } from './collector.js';

export function desyncsCollector(): Collector {
  return {
    name: 'desyncs',
    collect({ config, model, now }, emit) {
      const s = model.state;
      if (s.dirError) return s.dirError;
      // An untrusted state directory: nothing read from it is exported, except the breaches
      // last read from a trusted, valid state (a page must not resolve because of this).
      if (s.untrusted) {
        emitKnownBreaches(s.lastGood, emit);
        return s.untrusted;
      }
      // A corrupt state.json: only what the intact pin files say is exported (no
      // counters that would read as "reset"); the last known breach flags stay visible until
      // the loop has repaired the file.
      const partial = s.stateProblem !== null;
      for (const name of desyncNames(config, s.state)) {
        const d = buildDesyncStatus(name, config, s.state, now);
        const l = { desync: name };
        if (d.path !== null && d.revision !== null) emit('nixos_desync_pin_info', { ...l, revision: d.revision, path: d.path }, 1);
        if (d.maxLagRebuilds !== null) emit('nixos_desync_max_lag_rebuilds', l, d.maxLagRebuilds);
        if (d.maxBehindSeconds !== null) emit('nixos_desync_max_behind_seconds', l, d.maxBehindSeconds);
        if (d.path !== null || !partial) emit('nixos_desync_lag_rebuilds', l, d.lagRebuilds);
        if (partial) continue;
        const rec = s.state.desyncs[name];
        emit('nixos_desync_behind_seconds', l, d.behindSeconds);
        emit('nixos_desync_breached', l, bool(d.breached));
        emit('nixos_desync_in_sync', l, bool(d.inSync));
        emit('nixos_desync_consecutive_failures', l, d.consecutiveFailures);
        emit('nixos_desync_attempts_total', { ...l, result: 'passed' }, rec?.attempts.passed ?? 0);
        emit('nixos_desync_attempts_total', { ...l, result: 'failed' }, rec?.attempts.failed ?? 0);
        emit('nixos_desync_last_attempt_timestamp_seconds', l, unixSeconds(d.lastAttempt?.at));
        emit('nixos_desync_last_success_timestamp_seconds', l, unixSeconds(d.lastSuccessAt));
        emit('nixos_desync_desync_runtime_failures_total', l, d.runtimeFailures);
        // One series per desync (the series budget has room for one, not one per stage).
        emit('nixos_desync_desync_held_back', { ...l, stage: d.heldBack?.stage ?? 'none' }, bool(d.heldBack !== null));
      }
      if (partial) emitKnownBreaches(s.lastGood, emit);
      return partial ? `${s.stateProblem!.file}: ${s.stateProblem!.message}` : null;
    },
  };
}

/** `breached` of every desync as last read from a valid state.json (nothing before one was read). */
function emitKnownBreaches(lastGood: MachineState | null, emit: Emit): void {
  for (const [name, rec] of Object.entries(lastGood?.desyncs ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    emit('nixos_desync_breached', { desync: name }, bool(rec.breached));
  }
}
