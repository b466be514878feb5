// SystemSide for NixOS: `system.build` in a run-private directory (its ./result is the
// toplevel), `switch-to-configuration test` → health gate → profile + `switch-to-configuration
// boot`, and rollback by test-activating the previous toplevel again.
import { lstat, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Config } from '../config/schema.js';
import { DesyncError, errorMessage } from '../util/errors.js';
import { describeFailure, tailLines, type RunResult, type Runner } from '../util/exec.js';
import { parseDuration } from '../util/duration.js';
import { processesRunning } from '../util/proc.js';
import { parseFailedUnits, unitMatcher } from './units.js';
import type { ActivationMode, HealthFailure, SystemSide } from './system.js';
import type { CallOptions } from '../nix/adapter.js';

export const SYSTEMCTL_FAILED = ['systemctl', 'list-units', '--failed', '--plain', '--no-legend', '--no-pager'] as const;

export function activationMode(activate: Config['system']['activate']): ActivationMode {
  if (activate === null) return null;
  if (activate === 'switch' || activate === 'boot') return activate;
  return 'argv';
}

/** systemd-escape --path: what a path becomes inside a unit instance name. */
export function systemdEscapePath(path: string): string {
  const p = path.replace(/\/+/g, '/').replace(/^\/|\/$/g, '');
  if (p === '') return '-';
  let out = '';
  for (const [i, ch] of [...Buffer.from(p, 'utf8')].entries()) {
    const c = String.fromCharCode(ch);
    if (c === '/') out += '-';
    else if (/[A-Za-z0-9:_]/.test(c) || (c === '.' && i > 0)) out += c;
    else out += '\\x' + ch.toString(16).padStart(2, '0');
  }
  return out;
}

/**
 * The privileged steps of an activation ("test": switch-to-configuration test; "boot": the
 * profile generation + switch-to-configuration boot). Run directly, or — when the environment
 * names an activation unit (NIXOS_DESYNC_ACTIVATION_UNIT, set by the NixOS module for its
 * sandboxed loop) — by starting `<unit>@<action>:<escaped toplevel>.service`, which runs the
 * same steps as unconfined root and is waited for (`systemctl start` of a oneshot).
 */
function privilegedSteps(config: Config, env: NodeJS.ProcessEnv, action: 'test' | 'boot', toplevel: string): string[][] {
  const unit = env.NIXOS_DESYNC_ACTIVATION_UNIT;
  if (unit) return [['systemctl', 'start', `${unit}@${action}:${systemdEscapePath(toplevel)}.service`]];
  const stc = join(toplevel, 'bin', 'switch-to-configuration');
  return action === 'test' ? [[stc, 'test']] : [['nix-env', '-p', join(config.profilesDir, 'system'), '--set', toplevel], [stc, 'boot']];
}

/** How often the rollback asks whether an interrupted activation's unit is still at work. */
const SETTLE_POLL_MS = 250;

export function createNixosSystem(deps: { config: Config; run: Runner; env: NodeJS.ProcessEnv }): SystemSide {
  const { config, run, env } = deps;
  const mode = activationMode(config.system.activate);
  const ms = (d: string): number => (d === '0s' ? 0 : parseDuration(d)!);
  const failed = (r: RunResult): boolean => r.exitCode !== 0 || r.timedOut;
  const exec = (argv: readonly string[], o: { timeoutMs: number; signal?: AbortSignal; onSpawn?: (pgid: number) => void }, extraEnv: Record<string, string> = {}): Promise<RunResult> =>
    run(argv, { env: { ...env, ...extraEnv }, timeoutMs: o.timeoutMs, signal: o.signal, onSpawn: o.onSpawn });

  /**
   * With the activation unit: waits until the instance that activated `toplevel` has no job
   * queued or running. A loop killed or stopped while waiting for it leaves that activation
   * going on in its own unit; a rollback beside it would race it (and NixOS's
   * switch-to-configuration refuses to run twice at once).
   */
  async function activationSettled(toplevel: string, o: CallOptions): Promise<void> {
    const unit = env.NIXOS_DESYNC_ACTIVATION_UNIT;
    if (mode !== 'switch') return;
    const deadline = performance.now() + o.timeoutMs;
    if (!unit) {
      // Without the unit the activation was this tool's child: one a killed run left running (its process group not journaled yet) finishes first.
      const script = `${toplevel}/bin/switch-to-configuration`;
      while (processesRunning(script).length > 0) {
        if (performance.now() + SETTLE_POLL_MS > deadline) {
          throw new DesyncError('E_ROLLBACK', `the interrupted activation of ${toplevel} (pid ${processesRunning(script).join(', ')}) is still running; the previous system was not activated beside it`);
        }
        await sleep(SETTLE_POLL_MS);
      }
      return;
    }
    const instance = privilegedSteps(config, env, 'test', toplevel)[0]!.at(-1)!;
    for (;;) {
      const r = await exec(['systemctl', 'show', '--property=Job', '--property=ActiveState', '--', instance], { ...o, timeoutMs: Math.max(1, Math.min(30_000, deadline - performance.now())) })
        .catch((err: unknown) => ({ startError: errorMessage(err) }) as const);
      // Unknown (no systemctl answer): go ahead; the rollback's own start reports what is wrong.
      if ('startError' in r || failed(r)) return;
      const busy = /^Job=\S/m.test(r.stdout) || /^ActiveState=(activating|deactivating|reloading)$/m.test(r.stdout);
      if (!busy) return;
      if (performance.now() + SETTLE_POLL_MS > deadline) {
        throw new DesyncError('E_ROLLBACK', `the interrupted activation of ${toplevel} (${instance}) is still running; the previous system was not activated beside it`);
      }
      await sleep(SETTLE_POLL_MS);
    }
  }

  const side: SystemSide = {
    mode,
    gated: mode === 'switch' || mode === 'argv',

    async build(workDir, o) {
      const argv = config.system.build;
      const r = await run(argv, { env, cwd: workDir, timeoutMs: o.timeoutMs, signal: o.signal, onSpawn: o.onSpawn });
      if (failed(r)) {
        throw new DesyncError('E_SYSTEM_BUILD', `system build (${argv.join(' ')}) failed: ${describeFailure(r)}`, { details: { tail: tailLines(r.stderr || r.stdout, 20) } });
      }
      const result = join(workDir, 'result');
      const isLink = await lstat(result).then((s) => s.isSymbolicLink(), () => false);
      const toplevel = isLink ? await realpath(result).catch(() => null) : null;
      if (toplevel === null && mode !== null) {
        throw new DesyncError('E_SYSTEM_BUILD',
          `system build (${argv.join(' ')}) exited 0 but left no ./result link to a built system in its working directory: ` +
          'system.build must leave the toplevel there as ./result (as `nixos-rebuild build` and `nix-build` do)', { details: { tail: tailLines(r.stdout, 5) } });
      }
      return { toplevel, command: argv.join(' '), durationMs: r.durationMs };
    },

    async current() {
      return realpath(join(config.runDir, 'current-system')).catch(() => null);
    },

    async failedUnits(o) {
      let r: RunResult;
      try {
        r = await exec(SYSTEMCTL_FAILED, o);
      } catch (err) {
        throw new DesyncError('E_HEALTH', `cannot list failed systemd units (${SYSTEMCTL_FAILED.join(' ')}): ${errorMessage(err)}; ` +
          'on a host without systemd set health.failedUnits to false', { cause: err });
      }
      if (failed(r)) {
        throw new DesyncError('E_HEALTH', `cannot list failed systemd units: ${describeFailure(r)}\n${tailLines(r.stderr || r.stdout, 5)}`);
      }
      return parseFailedUnits(r.stdout);
    },

    async activate(toplevel, o) {
      let argv: readonly string[];
      if (mode === 'switch') argv = privilegedSteps(config, env, 'test', toplevel)[0]!;
      else if (mode === 'argv') argv = config.system.activate as string[];
      else return null;
      const r = await exec(argv, o, { NIXOS_DESYNC_TOPLEVEL: toplevel });
      // switch-to-configuration exits 4 when some units failed to (re)start: the health gate
      // decides about units (baseline, ignoreUnits), so that alone is not an activation failure.
      if (mode === 'switch' && r.exitCode === 4 && !r.timedOut) return `${argv.join(' ')} done; some units failed to start (exit 4): the health gate decides`;
      if (failed(r)) {
        throw new DesyncError('E_ACTIVATE', `activation (${argv.join(' ')}) failed: ${describeFailure(r)}`, { details: { tail: tailLines(r.stderr || r.stdout, 20) } });
      }
      return `${argv.join(' ')} ok`;
    },

    async health(toplevel, previous, baseline, o) {
      const h = config.health;
      const budget = ms(config.timeouts.health);
      const deadline = performance.now() + budget;
      const left = (): number => deadline - performance.now();
      const failures: HealthFailure[] = [];
      const timeout = (): HealthFailure => ({ kind: 'timeout', name: 'timeouts.health', reason: `the health gate did not finish within timeouts.health (${config.timeouts.health})`, tail: '' });
      const settle = Math.min(ms(h.settle), budget);
      if (settle > 0) await sleep(settle, undefined, { signal: o.signal }).catch(() => undefined);
      if (o.signal?.aborted) throw new DesyncError('E_INTERRUPTED', 'interrupted during the health gate');
      if (h.failedUnits) {
        const ignored = unitMatcher(h.ignoreUnits);
        const before = new Set(baseline);
        let now: string[] = [];
        try {
          now = await side.failedUnits({ ...o, timeoutMs: Math.max(1, left()) });
        } catch (err) {
          failures.push({ kind: 'unit', name: 'systemctl', reason: errorMessage(err).split('\n')[0]!, tail: tailLines(errorMessage(err), 5) });
        }
        for (const unit of now.filter((u) => !before.has(u) && !ignored(u))) {
          const st = await exec(['systemctl', 'status', '--no-pager', '--full', '--lines=10', '--', unit], { ...o, timeoutMs: Math.max(1, Math.min(left(), 30_000)) }).catch(() => null);
          failures.push({ kind: 'unit', name: unit, reason: 'failed after the activation', tail: st ? tailLines(st.stdout || st.stderr, 12) : '' });
        }
      }
      // The host's checks, then each desync's own healthChecks (tagged: attributed to that desync).
      const checks: { argv: string[]; desync?: string }[] = [
        ...h.checks.map((argv) => ({ argv })),
        ...Object.entries(config.desyncs).flatMap(([desync, d]) => d.healthChecks.map((argv) => ({ argv, desync }))),
      ];
      for (const { argv: check, desync } of checks) {
        if (left() <= 0) {
          failures.push(timeout());
          break;
        }
        const r = await exec(check, { ...o, timeoutMs: left() }, { NIXOS_DESYNC_TOPLEVEL: toplevel, NIXOS_DESYNC_PREVIOUS_TOPLEVEL: previous ?? '', ...(desync ? { NIXOS_DESYNC_NAME: desync } : {}) })
          .catch((err: unknown) => ({ startError: errorMessage(err) }) as const);
        const tag = desync !== undefined ? { desync } : {};
        if ('startError' in r) failures.push({ kind: 'check', name: check.join(' '), reason: r.startError, tail: '', ...tag });
        else if (r.timedOut) failures.push({ ...timeout(), tail: tailLines(r.stderr + '\n' + r.stdout, 10), name: check.join(' ') });
        else if (failed(r)) failures.push({ kind: 'check', name: check.join(' '), reason: describeFailure(r), tail: tailLines(r.stderr + '\n' + r.stdout, 10), ...tag });
      }
      return { ok: failures.length === 0, failures, checked: { units: h.failedUnits, checks: checks.length } };
    },

    async finalize(toplevel, o) {
      if (mode !== 'switch' && mode !== 'boot') return null;
      const profile = join(config.profilesDir, 'system');
      for (const argv of privilegedSteps(config, env, 'boot', toplevel)) {
        const r = await exec(argv, o).catch((err: unknown) => ({ startError: errorMessage(err) }) as const);
        const why = 'startError' in r ? r.startError : failed(r) ? `${describeFailure(r)}\n${tailLines(r.stderr || r.stdout, 10)}` : null;
        if (why !== null) {
          throw new DesyncError('E_ACTIVATE', `making ${toplevel} the boot default (${argv.join(' ')}) failed: ${why}`);
        }
      }
      return `${toplevel} is profile ${profile}'s newest generation and the boot default`;
    },

    async rollback(previous, failedToplevel, o) {
      if (mode !== 'switch' && mode !== 'argv') return 'nothing was activated';
      const current = join(config.runDir, 'current-system');
      if (previous === null) {
        throw new DesyncError('E_ROLLBACK', `there is no previous system to activate again (${current} did not exist before the activation); ${failedToplevel} may still be active`);
      }
      await activationSettled(failedToplevel, o);
      // Always activated again, also when current-system already names it: a killed or failed
      // activation may have switched the link and left units stopped.
      const argv = mode === 'switch' ? privilegedSteps(config, env, 'test', previous)[0]! : (config.system.activate as string[]);
      const r = await exec(argv, o, { NIXOS_DESYNC_TOPLEVEL: previous, NIXOS_DESYNC_ROLLBACK: '1' }).catch((err: unknown) => ({ startError: errorMessage(err) }) as const);
      if ('startError' in r || (failed(r) && !(mode === 'switch' && r.exitCode === 4))) {
        const why = 'startError' in r ? r.startError : `${describeFailure(r)}\n${tailLines(r.stderr || r.stdout, 10)}`;
        throw new DesyncError('E_ROLLBACK', `re-activating the previous system ${previous} (${argv.join(' ')}) failed: ${why}`);
      }
      // Confirmed only when the running system is the target again.
      const now = await side.current();
      if (now !== previous) {
        throw new DesyncError('E_ROLLBACK', `re-activating the previous system ${previous} (${argv.join(' ')}) exited ${r.exitCode}, but ${current} is ${now ?? 'missing'}, not ${previous}: the rollback is not confirmed`);
      }
      return `${previous} activated again`;
    },
  };
  return side;
}
