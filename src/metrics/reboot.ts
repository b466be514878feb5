// Reboot metrics (part of the system group): triggers from the booted system against the boot
// default, the window schedule, what blocks the reboot, and the last boot's health gate.
import { currentWindow, nextWindowStart } from '../reboot/schedule.js';
import { bool, type CollectContext, type Emit } from './collector.js';

export function emitReboot({ config, model, now }: CollectContext, emit: Emit): void {
  const s = model.system;
  const state = model.state.state;
  const r = config.reboot;
  // A new kernel brings its own initrd and modules: with `kernel`, those two are not repeated (series budget).
  const kernel = s.reboot.reasons.some((r) => r.trigger === 'kernel');
  for (const reason of s.reboot.reasons) {
    if (kernel && (reason.trigger === 'initrd' || reason.trigger === 'kernel-modules')) continue;
    emit('nixos_desync_system_reboot_triggers', { trigger: reason.trigger }, 1);
  }
  const next = nextWindowStart(r.window, now);
  if (next !== null) emit('nixos_desync_reboot_window_next_timestamp_seconds', {}, next.getTime() / 1000);
  const required = s.reboot.reasons.length > 0;
  // The last `reboot` decision still speaks for alerts only while it is about this boot default.
  const last = state.reboot.lastDecision;
  const lastApplies = last !== null && s.generationTimestamp !== null && Date.parse(last.at) >= s.generationTimestamp.getTime();
  const blocked = {
    disabled: required && !r.enable,
    window: required && currentWindow(r.window, now) === null,
    alerts: required && lastApplies && last.blocked === 'alerts',
    unreachable: required && lastApplies && last.blocked === 'unreachable',
  };
  // One series: what blocks it first (disabled, window, unreachable, alerts); absent when nothing does (series budget).
  const first = (['disabled', 'window', 'unreachable', 'alerts'] as const).find((x) => blocked[x]);
  if (first !== undefined) emit('nixos_desync_reboot_blocked', { reason: first }, 1);
  const boot = state.reboot.lastBoot;
  if (boot !== null) emit('nixos_desync_last_boot_health_success', {}, bool(boot.success));
}
