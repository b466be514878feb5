// `nixos-desync verify-boot` with a stand-in system side (health verdicts and boot-default
// changes are recorded) and the logged reboot stand-in: verified, unhealthy, fell back, the
// loop guard across two calls, and the bless-boot unit that never counts.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BOOT_IGNORED_UNITS, verifyBoot } from '../../src/reboot/verify-boot.js';
import { emptyState, type MachineState } from '../../src/state/model.js';
import { createStateStore } from '../../src/state/store.js';
import type { HealthReport, SystemSide } from '../../src/system/system.js';
import { createLogger } from '../../src/util/log.js';
import { rebootWorld, type RebootWorld } from '../helpers/reboot-world.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixos-desync-verify-boot-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface StandIn { side: SystemSide; unhealthy: Set<string>; baselines: string[][]; finalized: string[] }

/** The system side: `unhealthy` toplevels fail their health gate; finalize makes a toplevel the boot default. */
function standIn(w: RebootWorld): StandIn {
  const s: StandIn = { unhealthy: new Set(), baselines: [], finalized: [], side: undefined as never };
  s.side = {
    mode: 'switch', gated: true,
    build: async () => { throw new Error('not at boot'); },
    current: async () => null,
    failedUnits: async () => [],
    activate: async () => { throw new Error('verify-boot never activates live'); },
    async health(top, _previous, baseline): Promise<HealthReport> {
      s.baselines.push(baseline);
      const bad = s.unhealthy.has(top);
      return { ok: !bad, failures: bad ? [{ kind: 'unit', name: 'synapse.service', reason: 'failed after the activation', tail: '' }] : [], checked: { units: true, checks: 0 } };
    },
    async finalize(top) {
      s.finalized.push(top);
      await w.setDefault(top);
      return 'ok';
    },
    rollback: async () => { throw new Error('verify-boot never rolls back live'); },
  };
  return s;
}

async function world(reboot: Record<string, unknown> = {}) {
  const w = await rebootWorld(dir, reboot);
  const old = await w.toplevel('system-old', 'linux-1');
  const cand = await w.toplevel('system-new', 'linux-2');
  const store = createStateStore(w.stateDir);
  await store.prepareDir();
  await store.ensureLayout();
  // The loop committed `cand` (boot path) while `old` ran, verified.
  const st: MachineState = emptyState();
  st.verified = { toplevel: old, at: '2026-12-01T00:00:00.000Z', runId: 'r0', how: 'health' };
  st.reboot.pending = { toplevel: cand, previous: old, runId: 'r1', at: '2026-12-02T00:00:00.000Z', candidate: { path: '/nix/store/aaa-nixpkgs', revision: 'rev2', id: '/nix/store/aaa-nixpkgs' }, why: 'switch inhibitors differ' };
  await store.writeState(st);
  await w.setDefault(old);
  await w.setDefault(cand);
  return { w, old, cand, store, sys: standIn(w) };
}

async function verify(w: RebootWorld, sys: StandIn) {
  const lines: string[] = [];
  const out = await verifyBoot({ config: w.config, store: createStateStore(w.stateDir), system: sys.side, run: w.run, logger: createLogger({ write: (l) => lines.push(l) }), env: {}, now: () => new Date('2026-12-03T03:00:00Z') });
  return { out, text: lines.join('') };
}

describe('verify-boot', () => {
  it('the candidate booted and is healthy: verified, pending cleared, last boot success, exit 0; systemd-bless-boot never counts', async () => {
    const { w, cand, store, sys } = await world();
    await w.boot(cand);
    const { out, text } = await verify(w, sys);
    expect(out).toMatchObject({ exitCode: 0, result: 'verified', booted: cand, fellBack: false, rebooted: false });
    expect(text).toMatch(/is healthy: verified/);
    expect(sys.baselines).toEqual([BOOT_IGNORED_UNITS]);
    const st = (await store.readState({ repair: false })).value;
    expect(st.verified).toMatchObject({ toplevel: cand, how: 'health', runId: 'r1' });
    expect(st.reboot).toMatchObject({ pending: null, lastBoot: { success: true, booted: cand, error: null } });
    expect(w.calls).toEqual([]);
  });

  it('the candidate booted unhealthy: rejected, the previous verified system is the boot default again, one reboot into it; exit 1', async () => {
    const { w, old, cand, store, sys } = await world();
    await w.boot(cand);
    sys.unhealthy.add(cand);
    const { out, text } = await verify(w, sys);
    expect(out).toMatchObject({ exitCode: 1, result: 'rejected', healthy: false, bootDefault: old, rebooted: true });
    expect(text).toMatch(/the booted system .*system-new is unhealthy: unit synapse.service/);
    expect(sys.finalized).toEqual([old]);
    expect(await w.bootDefault()).toBe(old);
    expect(w.calls).toEqual([['stand-in-reboot', '--now']]);
    const st = (await store.readState({ repair: false })).value;
    expect(st.rejected).toEqual([expect.objectContaining({ id: '/nix/store/aaa-nixpkgs', revision: 'rev2', reason: 'health', runId: 'r1' })]);
    expect(st.reboot).toMatchObject({ pending: null, fallbackRebootFor: cand, lastBoot: { success: false } });
    expect(st.verified?.toplevel).toBe(old);
  });

  it('loop guard: the host comes back to the same candidate — no second reboot for it', async () => {
    const { w, old, cand, store, sys } = await world();
    await w.boot(cand);
    sys.unhealthy.add(cand);
    expect((await verify(w, sys)).out.rebooted).toBe(true);
    // The "reboot" came back to the candidate (e.g. the boot entry could not be changed): booted again, still unhealthy.
    await w.setDefault(cand);
    const second = await verify(w, sys);
    expect(second.out).toMatchObject({ exitCode: 1, result: 'rejected', rebooted: false });
    expect(second.text).toMatch(/NOT rebooting: verify-boot already rebooted away from .*system-new once \(the loop guard\)/);
    expect(w.calls).toHaveLength(1);
    expect(await w.bootDefault()).toBe(old);
    expect((await store.readState({ repair: false })).value.reboot.fallbackRebootFor).toBe(cand);
  });

  it('the boot loader fell back to the previous system (healthy): candidate rejected, the running system stays the boot default, no reboot', async () => {
    const { w, old, cand, store, sys } = await world();
    await w.boot(old);
    const { out, text } = await verify(w, sys);
    expect(out).toMatchObject({ exitCode: 1, result: 'rejected', fellBack: true, healthy: true, expected: cand, bootDefault: old, rebooted: false });
    expect(text).toMatch(/the boot loader booted .*system-old, not the boot default .*system-new \(it fell back\).*it runs already: no reboot/);
    expect(await w.bootDefault()).toBe(old);
    expect(w.calls).toEqual([]);
    const st = (await store.readState({ repair: false })).value;
    expect(st.rejected).toEqual([expect.objectContaining({ revision: 'rev2', reason: 'activation' })]);
    expect(st.reboot.lastBoot).toMatchObject({ success: false, booted: old });
  });

  it('without reboot.enable: the boot default goes back, the host is not rebooted (said so)', async () => {
    const { w, old, cand, sys } = await world({ enable: false });
    await w.boot(cand);
    sys.unhealthy.add(cand);
    const { out, text } = await verify(w, sys);
    expect(out).toMatchObject({ exitCode: 1, bootDefault: old, rebooted: false });
    expect(text).toMatch(/reboot.enable is false: reboot into it by hand/);
    expect(w.calls).toEqual([]);
  });

  it('a system activated live since the boot is not judged here (exit 0, nothing written)', async () => {
    const { w, old, cand, store, sys } = await world();
    await w.boot(old, cand);
    const { out } = await verify(w, sys);
    expect(out).toMatchObject({ exitCode: 0, result: 'skipped' });
    expect(sys.baselines).toEqual([]);
    expect((await store.readState({ repair: false })).value.reboot.lastBoot).toBeNull();
  });

  it('no pending candidate: the profile default is what should have booted; unhealthy without any other verified system → no way back, exit 1', async () => {
    const { w, cand, store, sys } = await world();
    const st = (await store.readState({ repair: false })).value;
    st.reboot.pending = null;
    st.verified = { toplevel: cand, at: st.verified!.at, runId: 'r1', how: 'health' };
    await store.writeState(st);
    await w.boot(cand);
    sys.unhealthy.add(cand);
    const { out } = await verify(w, sys);
    expect(out).toMatchObject({ exitCode: 1, result: 'rejected', rebooted: false, message: expect.stringMatching(/no verified generation is known to return to/) });
    expect(w.calls).toEqual([]);
  });
});
