// `nixos-desync verify-boot` (DESIGN.md step 9c, run at boot before boot-complete.target): the
// health gate on the booted system. Healthy, and the boot loader booted the system the loop made
// the boot default → verified. Unhealthy, or the loader fell back → that candidate is rejected,
// the last verified generation is made the boot default again (the loop's activation path) and,
// with reboot.enable, the host reboots into it — once per candidate (a loop guard in the state).
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { acquireLock } from '../state/lock.js';
import type { MachineState, RollbackReason } from '../state/model.js';
import { withRejected } from '../state/rejected.js';
import type { StateStore } from '../state/store.js';
import type { HealthReport, SystemSide } from '../system/system.js';
import { parseDuration } from '../util/duration.js';
import { errorMessage } from '../util/errors.js';
import type { Runner } from '../util/exec.js';
import type { Logger } from '../util/log.js';
import { runRebootCommand } from './command.js';

/** systemd-boot's blessing unit fails in containers and odd setups (nixpkgs issue 561855): never a verdict on the system. */
export const BOOT_IGNORED_UNITS = ['systemd-bless-boot.service'];

export interface VerifyBootDeps {
  config: Config;
  store: StateStore;
  system: SystemSide;
  run: Runner;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  now?: () => Date;
}

export interface VerifyBootOutcome {
  /** 0: verified (or nothing to verify); 1: rejected (unhealthy or fell back), or no way back. */
  exitCode: number;
  result: 'verified' | 'rejected' | 'skipped';
  booted: string | null;
  /** What the loop made the boot default (the pending candidate, else the profile's default). */
  expected: string | null;
  fellBack: boolean;
  healthy: boolean | null;
  /** The boot default now, when verify-boot changed it. */
  bootDefault: string | null;
  rebooted: boolean;
  message: string;
}

const real = (p: string): Promise<string | null> => realpath(p).catch(() => null);

export async function verifyBoot(deps: VerifyBootDeps): Promise<VerifyBootOutcome> {
  const { config, store, logger: log } = deps;
  const now = deps.now ?? (() => new Date());
  await store.prepareDir();
  const lock = await acquireLock(store.paths.lock, 'verify-boot');
  let out: Decided;
  try {
    await store.ensureLayout();
    const read = await store.readState({ repair: true });
    for (const p of read.problems) log.warn(`state file ${p.file} was ${p.message}${p.movedTo ? `; moved aside to ${p.movedTo}` : ''}`, { problem: p });
    const state = read.value;
    out = await decide(deps, state, now);
    if (out.result !== 'skipped') {
      state.reboot.lastBoot = { at: now().toISOString(), booted: out.booted, success: out.result === 'verified', error: out.result === 'rejected' ? out.message.slice(0, 2000) : null };
    }
    // Written before any reboot: the loop guard must survive it.
    await store.writeState(state);
  } finally {
    await lock.release();
  }
  (out.exitCode === 0 ? log.info : log.error)(`verify-boot ${out.message}`, { stage: 'verify-boot', result: out.result, booted: out.booted, expected: out.expected });
  if (out.rebooting) {
    log.warn(`verify-boot rebooting into ${out.bootDefault} (${config.reboot.command.join(' ')})`, { stage: 'verify-boot' });
    await runRebootCommand(deps);
    out.rebooted = true;
  }
  const { rebooting: _, ...rest } = out;
  return rest;
}

type Decided = VerifyBootOutcome & { rebooting: boolean };

/** The verdict on this boot, applied to `state` (the reboot itself is the caller's, after the write). */
async function decide(deps: VerifyBootDeps, state: MachineState, now: () => Date): Promise<Decided> {
  const { config, system, logger: log } = deps;
  const [booted, running, profileDefault] = await Promise.all([
    real(join(config.runDir, 'booted-system')), real(join(config.runDir, 'current-system')), real(join(config.profilesDir, 'system')),
  ]);
  const pending = state.reboot.pending;
  const expected = pending?.toplevel ?? profileDefault;
  const base = { booted, expected, fellBack: false, healthy: null, bootDefault: null, rebooted: false, rebooting: false };
  if (booted === null) return { ...base, exitCode: 1, result: 'rejected', message: `${join(config.runDir, 'booted-system')} does not exist: not a NixOS boot, nothing to verify` };
  if (running !== booted) {
    // Checked at boot; by hand later, a live activation since the boot is the loop's to judge.
    return { ...base, exitCode: 0, result: 'skipped', message: `the running system ${running ?? '(none)'} is not the booted one ${booted} (activated live since the boot): nothing to verify` };
  }
  // Fell back: a candidate waited for this boot and another system booted. Without one, the booted system alone is judged
  // (an entry picked by hand, or the host back on a candidate verify-boot already rejected).
  const fellBack = pending !== null && booted !== pending.toplevel;
  const report = await health(deps, booted, pending?.previous ?? null);
  const healthy = report.ok;
  for (const f of report.failures) log.info(`verify-boot FAILED — ${f.kind} ${f.name}: ${f.reason}`, { stage: 'verify-boot', kind: f.kind, name: f.name });
  const at = now().toISOString();
  if (healthy && !fellBack) {
    state.verified = { toplevel: booted, at, runId: pending?.runId ?? null, how: 'health' };
    state.reboot.pending = null;
    state.reboot.fallbackRebootFor = null;
    return { ...base, healthy, exitCode: 0, result: 'verified', message: `the booted system ${booted} is healthy: verified` };
  }
  // The candidate this boot was about: the one the loader did not boot, or the unhealthy booted one.
  const failed = fellBack ? expected! : booted;
  const why = fellBack
    ? `the boot loader booted ${booted}, not the boot default ${expected} (it fell back)${healthy ? '' : ', and the booted system is unhealthy'}`
    : `the booted system ${booted} is unhealthy: ${report.failures.map((f) => `${f.kind} ${f.name} (${f.reason})`).join('; ')}`;
  rejectBootCandidate(state, failed, fellBack ? 'activation' : 'health', at);
  state.reboot.pending = null;
  // Where to return: a healthy fallback is that; else the system known good before the candidate.
  const target = healthy ? booted : [pending?.previous ?? null, state.verified?.toplevel ?? null].find((t) => t !== null && t !== failed) ?? null;
  const d = { ...base, fellBack, healthy, exitCode: 1, result: 'rejected' as const };
  if (target === null) return { ...d, message: `${why}; candidate ${failed} is rejected, but no verified generation is known to return to: fix the host, then run \`nixos-desync upgrade\`` };
  if (target === booted) state.verified = { toplevel: booted, at, runId: null, how: 'health' };
  try {
    await system.finalize(target, { timeoutMs: parseDuration(config.timeouts.system)! });
  } catch (err) {
    return { ...d, message: `${why}; candidate ${failed} is rejected, but making ${target} the boot default again failed: ${errorMessage(err)}` };
  }
  const back = `${why}; candidate ${failed} is rejected and ${target} is the boot default again`;
  if (target === booted) return { ...d, bootDefault: target, message: `${back} (it runs already: no reboot)` };
  if (!config.reboot.enable) return { ...d, bootDefault: target, message: `${back}; reboot.enable is false: reboot into it by hand` };
  // Loop guard: never a second reboot away from the same candidate.
  if (state.reboot.fallbackRebootFor === failed) return { ...d, bootDefault: target, message: `${back}; NOT rebooting: verify-boot already rebooted away from ${failed} once (the loop guard), and the host came back to it — see \`nixos-desync status\`` };
  state.reboot.fallbackRebootFor = failed;
  return { ...d, bootDefault: target, rebooting: true, message: `${back}; rebooting into it (once for this candidate)` };
}

/** The health gate on the booted system: every failed unit counts (no pre-activation baseline), except systemd-bless-boot. */
async function health(deps: VerifyBootDeps, booted: string, previous: string | null): Promise<HealthReport> {
  try {
    return await deps.system.health(booted, previous, BOOT_IGNORED_UNITS, {});
  } catch (err) {
    return { ok: false, failures: [{ kind: 'check', name: 'health gate', reason: errorMessage(err).split('\n')[0]!, tail: '' }], checked: { units: false, checks: 0 } };
  }
}

/** Rejects the candidate `toplevel` was built from (the pending record, else its provenance). */
function rejectBootCandidate(state: MachineState, toplevel: string, reason: RollbackReason, at: string): void {
  const p = state.reboot.pending;
  const c = p?.toplevel === toplevel && p.candidate !== null ? { id: p.candidate.id, path: p.candidate.path, revision: p.candidate.revision, runId: p.runId } : null;
  const src = state.systems[toplevel];
  const entry = c ?? (src ? { id: null, path: src.nixpkgs.path, revision: src.nixpkgs.revision, runId: src.runId ?? 'verify-boot' } : null);
  // Already rejected (e.g. the host came back to it): the first verdict, with its identity, stays.
  if (entry === null || state.rejected.some((e) => e.path === entry.path && e.revision === entry.revision)) return;
  state.rejected = withRejected(state.rejected, { ...entry, at, reason });
}
