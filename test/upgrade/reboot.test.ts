// Step 9b in the loop with stand-in source and system sides: the run reboots only after it is
// recorded and the lock is released; a failing reboot command is reported, never the run's
// failure; and the boot path (switch inhibitors differ) never activates live.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Candidate } from '../../src/nix/adapter.js';
import type { Source } from '../../src/source/source.js';
import type { SystemSide } from '../../src/system/system.js';
import { acquireLock } from '../../src/state/lock.js';
import { createStateStore } from '../../src/state/store.js';
import { runUpgrade } from '../../src/upgrade/run.js';
import type { Runner } from '../../src/util/exec.js';
import { createLogger } from '../../src/util/log.js';
import { CallQueue, createFakeNix, ok, fail } from '../helpers/fake-nix.js';
import { makeConfig } from '../helpers/upgrade-harness.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-reboot-stage-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cand: Candidate = { path: '/nix/store/aaaa-source', storePath: '/nix/store/aaaa-source', revision: 'rev2', id: '/nix/store/aaaa-source' };

/** A toplevel directory with a kernel link (and switch inhibitors when given). */
async function toplevel(name: string, kernel: string, inhibitors?: string): Promise<string> {
  const top = join(dir, 'store', name);
  await mkdir(join(dir, 'store', kernel), { recursive: true });
  await mkdir(top, { recursive: true });
  await symlink(join(dir, 'store', kernel), join(top, 'kernel'));
  if (inhibitors !== undefined) await writeFile(join(top, 'switch-inhibitors'), inhibitors);
  return top;
}

async function world(o: { reboot?: Record<string, unknown>; inhibitors?: [string, string]; rebootFails?: boolean; bootThenRun?: boolean } = {}) {
  const old = await toplevel('old', 'linux-1', o.inhibitors?.[0]);
  const built = await toplevel('new', 'linux-2', o.inhibitors?.[1]);
  const runDir = join(dir, 'run');
  const profilesDir = join(dir, 'profiles');
  await mkdir(runDir, { recursive: true });
  await mkdir(profilesDir, { recursive: true });
  await symlink(old, join(runDir, 'booted-system'));
  await symlink(old, join(runDir, 'current-system'));
  const config = makeConfig(join(dir, 'state'), { desyncs: {}, runDir, profilesDir, system: { build: ['sys-build'], activate: 'switch' }, reboot: { enable: true, command: ['stand-in-reboot'], sentinel: join(runDir, 'reboot-required'), ...o.reboot } });
  const order: string[] = [];
  let running = old;
  const source: Source = {
    kind: 'channel',
    fetch: async () => ({ skipped: true, message: 'skipped' }),
    candidate: async () => cand,
    expose: async () => undefined,
    restore: async () => undefined,
    commit: async () => undefined,
  };
  const system: SystemSide = {
    mode: 'switch', gated: true,
    build: async () => ({ toplevel: built, command: 'sys-build', durationMs: 1 }),
    current: async () => running,
    failedUnits: async () => [],
    activate: async () => { order.push('activate'); return 'activated'; },
    health: async () => ({ ok: true, failures: [], checked: { units: false, checks: 0 } }),
    finalize: async (t) => {
      order.push('finalize');
      await symlink(t, join(profilesDir, 'system'));
      return `${t} is the boot default`;
    },
    rollback: async () => { order.push('rollback'); return 'rolled back'; },
  };
  const store = createStateStore(config.stateDir);
  // The reboot stand-in: what the host looks like at the moment it is asked to reboot.
  const run: Runner = async (argv) => {
    const lockFree = await acquireLock(store.paths.lock, 'probe').then(async (l) => { await l.release(); return true; }, () => false);
    const recorded = (await store.readState({ repair: false })).value.runs.last?.result ?? null;
    order.push(`reboot (lock free: ${lockFree}, run recorded: ${recorded})`);
    return o.rebootFails ? fail(argv, 'Failed to reboot: access denied') : ok(argv);
  };
  const lines: string[] = [];
  const upgrade = () => runUpgrade({ config, nix: createFakeNix(new CallQueue()), run, store, source, system, logger: createLogger({ write: (l) => lines.push(l) }), env: {} });
  let res = await upgrade();
  if (o.bootThenRun) {
    // The host booted the boot default; the upgrade timer fires before verify-boot has run.
    running = built;
    order.length = 0;
    lines.length = 0;
    res = await upgrade();
  }
  return { res, order, out: lines.join(''), state: (await store.readState({ repair: false })).value, old, built };
}

describe('step 9b: the run reboots', () => {
  it('a new kernel, reboot.enable, any time: reboots once the run is recorded and the lock released', async () => {
    const { res, order, out, state, built, old } = await world();
    expect(res).toMatchObject({ exitCode: 0, result: 'success', reboot: { blocked: null, rebooting: true } });
    expect(order).toEqual(['activate', 'finalize', 'reboot (lock free: true, run recorded: success)']);
    expect(out).toMatch(/reboot +reboot required \(kernel: .*linux-1 → .*linux-2\); rebooting now once the run is recorded/);
    expect(state.reboot.pending).toMatchObject({ toplevel: built, previous: old, candidate: { id: cand.id }, why: expect.stringMatching(/verified live/) });
    expect(state.reboot.lastDecision).toMatchObject({ blocked: null });
  });

  it('a failing reboot command: reported as an error, the run stays a success', async () => {
    const { res, out } = await world({ rebootFails: true });
    expect(res).toMatchObject({ exitCode: 0, result: 'success', reboot: { rebooting: false, error: expect.stringMatching(/stand-in-reboot\) failed: .*\n.*access denied/) } });
    expect(out).toMatch(/^error: reboot +reboot command \(stand-in-reboot\) failed: [\s\S]*access denied; `nixos-desync reboot` tries again at the next window/m);
  });

  it('reboot.enable false: no reboot; the decision (disabled) is recorded for status', async () => {
    const { res, order, state } = await world({ reboot: { enable: false } });
    expect(res).toMatchObject({ exitCode: 0, reboot: { blocked: 'disabled', rebooting: false } });
    expect(order).toEqual(['activate', 'finalize']);
    expect(state.reboot.lastDecision).toMatchObject({ blocked: 'disabled' });
  });
});

describe('the boot path', () => {
  it('switch inhibitors differ: never activated live; the boot default; not the verified system; pending with where to return', async () => {
    const { res, order, out, state, built, old } = await world({ reboot: { enable: false }, inhibitors: ['{"systemd":"257"}', '{"systemd":"258"}'] });
    expect(res).toMatchObject({ exitCode: 0, result: 'success', bootPath: expect.stringMatching(/systemd: 257 → 258/) });
    expect(order).toEqual(['finalize']);
    expect(out).toMatch(/activate +not activated live: its switch inhibitors differ from the running system's \(systemd: 257 → 258\)/);
    expect(state.verified?.toplevel).toBe(old);
    expect(state.reboot.pending).toMatchObject({ toplevel: built, previous: old, why: expect.stringMatching(/switch inhibitors differ/) });
    expect(res.stages.activate).toBeUndefined();
  });

  it('booted but not yet judged by verify-boot: a run neither adopts nor rolls back the candidate (it fails, nothing changed)', async () => {
    const { res, order, state, built, old } = await world({ reboot: { enable: false }, inhibitors: ['{"systemd":"257"}', '{"systemd":"258"}'], bootThenRun: true });
    expect(res).toMatchObject({ exitCode: 1, result: 'failure', evaluations: 0, error: { code: 'E_BOOT_PENDING', message: expect.stringMatching(/boot-path candidate, booted, and verify-boot has not judged it yet\); the run waits for `nixos-desync verify-boot`/) } });
    expect(order).toEqual([]);
    expect(state.verified?.toplevel).toBe(old);
    expect(state.reboot.pending?.toplevel).toBe(built);
  });

  it('the same inhibitors: the live path as always', async () => {
    const { order, res } = await world({ reboot: { enable: false }, inhibitors: ['{"systemd":"258"}', '{"systemd":"258"}'] });
    expect(order).toEqual(['activate', 'finalize']);
    expect(res.bootPath).toBeUndefined();
  });
});
