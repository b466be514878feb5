// Step 9's order (issue 18 item 8): the boot entry comes first, then the source's own commit
// (flake mode: git commit of flake.lock). A failing git commit (e.g. signing) is reported —
// output, a log line, the run's record — and leaves the healthy system its boot entry.
// The boot entry itself is part of the commit: not cancelled by SIGTERM, and kept for `recover` when it fails.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Candidate } from '../../src/nix/adapter.js';
import type { Source } from '../../src/source/source.js';
import type { SystemSide } from '../../src/system/system.js';
import { createStateStore } from '../../src/state/store.js';
import { recoverOnly, runUpgrade } from '../../src/upgrade/run.js';
import { unverifiedReason } from '../../src/state/verified.js';
import { DesyncError } from '../../src/util/errors.js';
import { createLogger } from '../../src/util/log.js';
import { CallQueue, createFakeNix, createFakeRunner } from '../helpers/fake-nix.js';
import { makeConfig } from '../helpers/upgrade-harness.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-commit-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const cand: Candidate = { path: '/nix/store/aaaa-source', storePath: '/nix/store/aaaa-source', revision: 'rev2', id: 'rev2+sha256-x' };
const TOPLEVEL = '/nix/store/bbbb-nixos-system-host';

/** The loop with a fake Nix and fake source and system sides that log their steps in `order`. */
function world(o: { finalize?: SystemSide['finalize']; commit?: Source['commit']; kind?: Source['kind'] } = {}) {
  const order: string[] = [];
  const source: Source = {
    kind: o.kind ?? 'channel',
    fetch: async () => ({ skipped: false, message: 'fetched' }),
    candidate: async () => cand,
    expose: async () => undefined,
    restore: async () => { order.push('restore'); },
    commit: async (set, opts) => { order.push('source commit'); await o.commit?.(set, opts); },
  };
  const system: SystemSide = {
    mode: 'switch',
    gated: true,
    build: async () => ({ toplevel: TOPLEVEL, command: 'nixos-rebuild build', durationMs: 1 }),
    current: async () => '/nix/store/cccc-nixos-system-previous',
    failedUnits: async () => [],
    activate: async () => { order.push('activate'); return 'activated'; },
    health: async () => ({ ok: true, failures: [], checked: { units: false, checks: 0 } }),
    finalize: async (t, opts) => { const line = o.finalize ? await o.finalize(t, opts) : `${t} is the boot default`; order.push('finalize'); return line; },
    rollback: async () => { order.push('rollback'); return 'rolled back'; },
  };
  const config = makeConfig(join(dir, 'state'), { desyncs: {} });
  const q = new CallQueue();
  const lines: string[] = [];
  const store = createStateStore(config.stateDir);
  const deps = (signal?: AbortSignal) => ({ config, nix: createFakeNix(q), run: createFakeRunner(q), store, source, system, logger: createLogger({ write: (l: string) => void lines.push(l) }), env: {}, signal });
  return { order, store, deps, lines };
}

describe('commit: boot entry first, then the lock file commit', () => {
  it('a failing git commit of flake.lock: the healthy system still becomes the boot default; the run fails, says so and records it; the set stays committed', async () => {
    const { order, store, deps, lines } = world({
      kind: 'flake',
      commit: async () => {
        throw new DesyncError('E_FLAKE_LOCK', 'git commit of /etc/nixos/flake.lock failed: git exited with code 128; the new flake.lock is in place (commit it yourself)\nerror: gpg failed to sign the data');
      },
    });
    const res = await runUpgrade(deps());
    expect(order).toEqual(['activate', 'finalize', 'source commit']);
    expect(res).toMatchObject({ exitCode: 1, result: 'failure', error: { code: 'E_FLAKE_LOCK', message: expect.stringMatching(/git commit of \/etc\/nixos\/flake\.lock failed: .*commit it yourself/) } });
    const out = lines.join('');
    expect(out).toMatch(/boot +\/nix\/store\/bbbb-nixos-system-host is the boot default/);
    expect(out).toMatch(/git commit of \/etc\/nixos\/flake\.lock failed/);
    // State stays consistent: the set is committed with the system that runs (no rollback, no restore).
    const state = (await store.readState({ repair: false })).value;
    expect(state.committed.setId).toBe(res.runId);
    expect(Object.keys(state.systems)).toEqual([TOPLEVEL]);
    expect(state.runs.last).toMatchObject({ id: res.runId, result: 'failure', error: expect.stringMatching(/git commit .* failed/) });
    const history = (await store.readHistory({ repair: false })).value.runs;
    expect(history.at(-1)).toMatchObject({ id: res.runId, exitCode: 1, error: expect.stringMatching(/gpg failed to sign/) });
  });
});

describe('commit: the boot entry is part of the commit', () => {
  it('a SIGTERM while the committed system is made the boot default does not cancel it (systemd stop during the commit)', async () => {
    const ac = new AbortController();
    const w = world({ finalize: async (t, o) => {
      ac.abort(); // the signal lands while switch-to-configuration boot runs
      await new Promise((r) => setTimeout(r, 5));
      if (o.signal?.aborted) throw new DesyncError('E_INTERRUPTED', 'switch-to-configuration boot killed by the run\'s abort signal');
      return `${t} is the boot default`;
    } });
    const res = await runUpgrade(w.deps(ac.signal));
    expect(w.order).toEqual(['activate', 'finalize', 'source commit']);
    expect(res).toMatchObject({ exitCode: 0, result: 'success' });
    const state = (await w.store.readState({ repair: false })).value;
    expect(state.verified?.toplevel).toBe(TOPLEVEL);
    expect(await w.store.readJournal({ repair: false }).then((j) => j.value)).toBeNull();
  });

  it('a failing boot entry after the commit point: the run fails, the system is unverified and its journal stays until recover makes the boot entry (the run counted once)', async () => {
    let calls = 0;
    const w = world({ finalize: async (t) => {
      calls += 1;
      if (calls <= 2) throw new DesyncError('E_ACTIVATE', `making ${t} the boot default failed: /boot is full`);
      return `${t} is the boot default`;
    } });
    const res = await runUpgrade(w.deps());
    expect(res).toMatchObject({ exitCode: 1, result: 'failure', error: { message: expect.stringMatching(/\/boot is full/) } });
    const committed = (await w.store.readState({ repair: false })).value;
    expect(committed.committed.setId).toBe(res.runId);
    const journal = (await w.store.readJournal({ repair: false })).value;
    expect(journal).toMatchObject({ runId: res.runId, activation: { toplevel: TOPLEVEL } });
    // Not verified without its boot entry (DESIGN "verified system"): status and the exporter say so.
    expect(unverifiedReason(committed, journal, TOPLEVEL)).toMatch(/committed by run .*, which ended before making it the boot default/);
    // recover tries again; failing again, it keeps the journal and says why.
    await expect(recoverOnly(w.deps())).rejects.toMatchObject({ code: 'E_ROLLBACK', message: expect.stringMatching(/the system is unverified: run \S+ committed \S+, but making it the boot default failed again: .*\/boot is full/) });
    expect((await w.store.readJournal({ repair: false })).value).toMatchObject({ runId: res.runId });
    expect(await recoverOnly(w.deps())).toBe(res.runId);
    expect(calls).toBe(3);
    expect((await w.store.readJournal({ repair: false })).value).toBeNull();
    const state = (await w.store.readState({ repair: false })).value;
    expect(Object.values(state.runs.total).reduce((a, b) => a + b, 0)).toBe(1);
  });
});
