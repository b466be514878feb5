// Whether the host may reboot now (DESIGN.md step 9b): a reboot is required (a trigger differs),
// reboot.enable, inside the window, and no matching alert fires (reboot.blockOnAlerts).
import type { Config } from '../config/schema.js';
import type { RebootBlock } from '../state/model.js';
import { currentWindow, describeWindow, nextWindowStart } from './schedule.js';
import { describeReason, type RebootSituation } from './triggers.js';

export const REBOOT_BLOCKS = ['window', 'alerts', 'disabled', 'unreachable'] as const satisfies readonly RebootBlock[];

/** Firing alerts whose name matches the filter, or why Prometheus could not be asked. */
export type AlertsCheck = () => Promise<{ ok: true; matching: string[] } | { ok: false; error: string }>;

export interface RebootDecision {
  required: boolean;
  /** null: reboot now (when `required`). */
  blocked: RebootBlock | null;
  /** Why, in one line for people. */
  message: string;
  nextWindow: Date | null;
}

export async function decideReboot(config: Config, situation: RebootSituation, now: Date, alerts: AlertsCheck | null): Promise<RebootDecision> {
  const r = config.reboot;
  const nextWindow = nextWindowStart(r.window, now);
  const why = situation.reasons.map(describeReason).join('; ');
  if (situation.reasons.length === 0) return { required: false, blocked: null, message: 'no reboot required: the boot default differs from the booted system in no reboot trigger', nextWindow };
  const base = `reboot required (${why})`;
  if (!r.enable) return { required: true, blocked: 'disabled', message: `${base}; reboot.enable is false: reboot when convenient`, nextWindow };
  if (currentWindow(r.window, now) === null) {
    return { required: true, blocked: 'window', message: `${base}; outside the reboot window (${describeWindow(r.window)}): the next one opens ${nextWindow?.toISOString() ?? 'never'}`, nextWindow };
  }
  if (r.blockOnAlerts !== null && alerts !== null) {
    const a = await alerts();
    if (!a.ok) return { required: true, blocked: 'unreachable', message: `${base}; Prometheus (${r.blockOnAlerts.prometheus.url}) cannot be asked for alerts (${a.error}): blocked until it answers`, nextWindow };
    if (a.matching.length > 0) return { required: true, blocked: 'alerts', message: `${base}; alerts matching reboot.blockOnAlerts.alertFilter fire: ${a.matching.slice(0, 10).join(', ')}`, nextWindow };
  }
  return { required: true, blocked: null, message: `${base}; rebooting now`, nextWindow };
}
