// Reboot triggers (DESIGN.md step 9b): what of a new toplevel only a reboot applies — compared
// between the booted system and the boot default — and nixpkgs' switch inhibitors, compared
// between the running system and the new one (a difference means: no live activation).
import { readFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';

import { REBOOT_TRIGGERS, type RebootTrigger } from '../config/reboot-terms.js';

export { DEFAULT_REBOOT_TRIGGERS, REBOOT_TRIGGERS, type RebootTrigger } from '../config/reboot-terms.js';

export interface RebootReason {
  trigger: RebootTrigger;
  /** What the booted system has (a store path, the kernel params, the inhibitors that differ), or null. */
  booted: string | null;
  /** What the boot default has. */
  next: string | null;
}

/** The file nixpkgs writes into every toplevel that declares `system.switch.inhibitors`. */
export const SWITCH_INHIBITORS_FILE = 'switch-inhibitors';

const real = (p: string): Promise<string | null> => realpath(p).catch(() => null);
const text = (p: string): Promise<string | null> => readFile(p, 'utf8').then((s) => (s.length > 65_536 ? s.slice(0, 65_536) : s), () => null);

export interface SwitchInhibitors {
  /** `json`: current nixpkgs (PR 477800), name → string; `lines`: the first version (PR 473282), store paths one per line. */
  format: 'json' | 'lines';
  entries: Record<string, string>;
}

/** `<toplevel>/switch-inhibitors`, or null when the system declares none (no such file). */
export async function readSwitchInhibitors(toplevel: string): Promise<SwitchInhibitors | null> {
  const raw = await text(join(toplevel, SWITCH_INHIBITORS_FILE));
  if (raw === null) return null;
  const t = raw.trim();
  if (!t.startsWith('{')) return { format: 'lines', entries: Object.fromEntries(t.split('\n').map((l) => l.trim()).filter((l) => l !== '').map((l) => [l, l])) };
  try {
    const v = JSON.parse(t) as unknown;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      return { format: 'json', entries: Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, typeof x === 'string' ? x : JSON.stringify(x)])) };
    }
  } catch {
    // Fall through: nixpkgs' own check fails loudly on a corrupt file (PR 510514).
  }
  return { format: 'json', entries: { '(unreadable switch-inhibitors)': t.slice(0, 200) } };
}

/**
 * Inhibitors that block a live switch from `running` to `next`, as nixpkgs' pre-switch check
 * decides: JSON files compare the names present in both whose values differ; line lists (the
 * older format) compare as sets. Empty: a live activation is fine.
 */
export function inhibitorChanges(running: SwitchInhibitors | null, next: SwitchInhibitors | null): string[] {
  if (running === null || next === null) return [];
  const [a, b] = [running.entries, next.entries];
  if (running.format === 'lines' || next.format === 'lines') {
    return [...Object.keys(a).filter((x) => !(x in b)).map((x) => `-${x}`), ...Object.keys(b).filter((x) => !(x in a)).map((x) => `+${x}`)].sort();
  }
  const unreadable = Object.keys(b).filter((k) => k.startsWith('(unreadable'));
  return [...unreadable, ...Object.keys(b).filter((k) => k in a && a[k] !== b[k]).sort().map((k) => `${k}: ${a[k]} → ${b[k]}`)];
}

/** Switch inhibitors that differ between the running toplevel and `next` (nixpkgs' rule); [] when none. */
export async function switchInhibitorsDiffer(running: string | null, next: string): Promise<string[]> {
  if (running === null || running === next) return [];
  const [a, b] = await Promise.all([readSwitchInhibitors(running), readSwitchInhibitors(next)]);
  return inhibitorChanges(a, b);
}

async function part(toplevel: string, trigger: Exclude<RebootTrigger, 'switch-inhibitors'>): Promise<string | null> {
  if (trigger === 'kernel-params') {
    const t = await text(join(toplevel, 'kernel-params'));
    return t === null ? null : t.trim();
  }
  return real(join(toplevel, trigger));
}

/** Triggers (of `triggers`) in which `next` differs from `booted`; inhibitors compare `running` with `next`. */
export async function compareToplevels(booted: string, next: string, running: string | null, triggers: readonly RebootTrigger[]): Promise<RebootReason[]> {
  if (booted === next) return [];
  const out: RebootReason[] = [];
  for (const t of REBOOT_TRIGGERS.filter((x) => triggers.includes(x))) {
    if (t === 'switch-inhibitors') {
      // Only a system that was not activated live (the boot default is not what runs) waits for a reboot because of them.
      if (running === next) continue;
      const changes = await switchInhibitorsDiffer(running, next);
      if (changes.length > 0) out.push({ trigger: t, booted: null, next: changes.join('; ') });
      continue;
    }
    const [a, b] = await Promise.all([part(booted, t), part(next, t)]);
    if (a !== b) out.push({ trigger: t, booted: a, next: b });
  }
  return out;
}

export interface RebootSituation {
  /** `<runDir>/booted-system`, `<runDir>/current-system`, and the boot default (`<profilesDir>/system`, else the running one). */
  booted: string | null;
  running: string | null;
  next: string | null;
  reasons: RebootReason[];
}

export const NO_REBOOT: RebootSituation = { booted: null, running: null, next: null, reasons: [] };

/** What a reboot would change now: the booted system against the boot default. */
export async function readRebootSituation(profilesDir: string, runDir: string, triggers: readonly RebootTrigger[]): Promise<RebootSituation> {
  const [booted, running, profile] = await Promise.all([real(join(runDir, 'booted-system')), real(join(runDir, 'current-system')), real(join(profilesDir, 'system'))]);
  const next = profile ?? running;
  const reasons = booted === null || next === null ? [] : await compareToplevels(booted, next, running, triggers);
  return { booted, running, next, reasons };
}

/** One line per reason, for `status`, the sentinel and logs. */
export function describeReason(r: RebootReason): string {
  if (r.trigger === 'switch-inhibitors') return `switch-inhibitors: ${r.next}`;
  return `${r.trigger}: ${r.booted ?? '(none)'} → ${r.next ?? '(none)'}`;
}
