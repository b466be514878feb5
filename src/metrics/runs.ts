// Run metrics from state.json (counters persisted by the loop) and the run journal.
import { STAGES } from '../upgrade/context.js';
import { isProcessAlive } from '../util/proc.js';
import { RUN_RESULTS } from '../state/model.js';
import { unverifiedReason } from '../state/verified.js';
import { bool, unixSeconds, type Collector } from './collector.js';
import { emitRollout } from './rollout.js';

export function runsCollector(opts: { isAlive?: (pid: number, startTime?: string) => boolean } = {}): Collector {
  const alive = opts.isAlive ?? isProcessAlive;
  return {
    name: 'runs',
    collect(ctx, emit) {
      const { model } = ctx;
      const s = model.state;
      if (s.dirError) return s.dirError;
      // A live process holding the run lock is a run in progress (its files are applied when
      // it ends); so is a journal whose owner is alive. A crashed run's journal is not.
      const inProgress = s.runHolder !== null || (s.journal !== null && alive(s.journal.pid, s.journal.pidStartTime));
      if (s.untrusted) {
        emit('nixos_desync_run_in_progress', {}, bool(s.runHolder !== null));
        return s.untrusted;
      }
      const problems = [s.stateProblem, s.historyProblem, s.journalProblem].filter((p) => p !== null);
      emit('nixos_desync_state_corrupt_files', {}, s.corruptFiles.length);
      if (!s.journalProblem || s.runHolder !== null) emit('nixos_desync_run_in_progress', {}, bool(inProgress));
      if (s.stateProblem) return problems.map((p) => `${p.file}: ${p.message}`).join('; ');
      const runs = s.state.runs;
      emitRollout(ctx, emit);
      for (const result of RUN_RESULTS) emit('nixos_desync_runs_total', { result }, runs.total[result]);
      const rb = s.state.rollbacks;
      for (const reason of ['activation', 'health'] as const) emit('nixos_desync_rollbacks_total', { reason }, rb.total[reason]);
      emit('nixos_desync_last_rollback_timestamp_seconds', {}, unixSeconds(rb.last?.at));
      // A system activated and never confirmed (a run killed in its activation or health gate, a failed rollback) is never shown green.
      const unverified = !inProgress && unverifiedReason(s.state, s.journal, model.system.currentToplevel) !== null;
      emit('nixos_desync_system_unverified', {}, bool(unverified));
      if (s.state.health.lastSuccess !== null) emit('nixos_desync_last_health_check_success', {}, bool(s.state.health.lastSuccess && !unverified));
      emit('nixos_desync_last_run_timestamp_seconds', {}, unixSeconds(runs.last?.at));
      emit('nixos_desync_last_successful_run_timestamp_seconds', {}, unixSeconds(runs.lastSuccessAt));
      if (runs.last) {
        emit('nixos_desync_last_run_success', {}, bool(runs.last.result === 'success'));
        emit('nixos_desync_last_run_duration_seconds', {}, runs.last.durationSeconds);
        // Known stages in loop order first, then any other recorded stage name.
        const names = Object.keys(runs.last.stages);
        const ordered = [...STAGES.filter((st) => names.includes(st)), ...names.filter((n) => !(STAGES as readonly string[]).includes(n)).sort()];
        for (const stage of ordered) emit('nixos_desync_last_run_stage_duration_seconds', { stage }, runs.last.stages[stage]!);
      }
      return problems.length > 0 ? problems.map((p) => `${p.file}: ${p.message}`).join('; ') : null;
    },
  };
}
