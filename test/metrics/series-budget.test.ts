// The series budget of the contract: a host with D desyncs exposes at most 70 + 14·D samples
// on a live scrape, runtime metrics included — measured on the worst case the exporter can
// be in: every desync with both budgets, an attempt history and a pin; a finished run with
// every stage; the upgrade unit and a flake lock with 40 inputs (bounded); a rollout host that
// is held, runs its adopted revision and rejected three candidates (only two are exported);
// PR files off.
import { mkdir, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { parseConfig } from '../../src/config/load.js';
import { emptyDesyncRecord, emptyState } from '../../src/state/model.js';
import { createStateStore } from '../../src/state/store.js';
import { STAGES } from '../../src/upgrade/run.js';
import { FLAKE_INPUT_SERIES_MAX } from '../../src/metrics/flake.js';
import { buildSystemGenerations } from '../fixtures/exporter/build.js';
import { startTestExporter, type StartedExporter } from '../fixtures/exporter/start.js';
import { FAILED_UPGRADE_UNIT, makeSystemctl } from '../fixtures/exporter/systemctl.js';

let dir: string | undefined;
let exp: StartedExporter | undefined;
afterEach(async () => {
  await exp?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  [exp, dir] = [undefined, undefined];
});

/** Samples on one live scrape of a host with `d` desyncs (lines that are not comments). */
async function samplesAt(d: number): Promise<{ total: number; byFamily: Map<string, number> }> {
  dir = await mkdtemp(join(tmpdir(), 'nixos-desync-budget-'));
  const [stateDir, profilesDir, runDir, storeDir] = ['state', 'profiles', 'run', 'store'].map((x) => join(dir!, x)) as [string, string, string, string];
  await buildSystemGenerations({ profilesDir, runDir, storeDir });
  const names = Array.from({ length: d }, (_, i) => `desync-${i}`);
  const at = '2026-01-10T04:00:00.000Z';
  const state = emptyState();
  state.committed = { setId: '20260110T040000Z-a1b2c3', at, pins: {} };
  for (const n of names) {
    const path = `/nix/store/${'0123456789abcdfghijklmnpqrsvwxyz'.slice(0, 32)}-nixpkgs-${n}`;
    state.committed.pins[n] = { path, storePath: path, revision: 'c0ffee0000000000000000000000000000000001', desyncAge: 2, pinnedAt: at };
    // Held back at runtime, with runtime failures: the two runtime hold-back series are there too.
    state.desyncs[n] = { ...emptyDesyncRecord(), attempts: { passed: 5, failed: 2 }, consecutiveFailures: 2, lastAttempt: { at, result: 'failed' }, lastSuccessAt: at, behindSince: at,
      heldBack: { stage: 'health', since: at, reason: 'health: unit x.service (failed)', retryAt: at }, runtimeFailures: 1 };
  }
  state.runs.total = { success: 10, failure: 2, breach: 1, rolled_back: 1, rollback_failed: 1 };
  // A rollback and a health gate happened; the running system was built by the loop from the pins.
  state.rollbacks = { total: { activation: 1, health: 1 }, last: { runId: 'r', at, reason: 'health', toplevel: '/nix/store/x', previous: null, error: 'x' } };
  state.health = { lastSuccess: true, lastAt: at };
  const running = await realpath(join(runDir, 'current-system'));
  state.systems[running] = { runId: 'r', builtAt: at, nixpkgs: { revision: 'c0ffee0000000000000000000000000000000002', path: '/nix/store/n' },
    desyncs: Object.fromEntries(names.map((n) => [n, { revision: 'c0ffee0000000000000000000000000000000001', desyncAge: 2, path: '/nix/store/p' }])) };
  state.rollout = { adopted: { revision: 'c0ffee0000000000000000000000000000000002', since: at }, held: { reason: 'soak', since: at, revision: 'c0ffee0000000000000000000000000000000009', message: 'waiting' } };
  const rejected = (n: number) => ({ id: `/nix/store/r${n}`, revision: `c0ffee000000000000000000000000000000000${n}`, path: `/nix/store/r${n}`, runId: 'r', at, reason: 'health' as const });
  state.rejected = [rejected(5), rejected(6), rejected(7)];
  state.runs.last = { id: 'r', at, finishedAt: at, result: 'failure', durationSeconds: 700, stages: Object.fromEntries(STAGES.map((s) => [s, 1])), error: 'x' };
  state.runs.lastSuccessAt = at;
  // A reboot is required (the fixture's generations differ from the booted one) and waits. (Nothing writes
  // state.reboot.lastBoot yet: verify-boot, which will, needs one more sample of the budget.)
  state.reboot.lastDecision = { at, blocked: 'alerts', message: 'x' };
  await mkdir(stateDir);
  await createStateStore(stateDir).writeState(state);
  // A big host flake (#18.9: 40 inputs gave 148 samples): its input series are bounded. (In
  // flake mode the desyncs' own inputs are reported by the per-desync series, not again here.)
  const inputs = ['nixpkgs', 'home-manager', 'nixos-hardware', ...Array.from({ length: 37 }, (_, i) => `extra-${i}`)];
  const nodes: Record<string, unknown> = { root: { inputs: Object.fromEntries(inputs.map((i) => [i, i])) } };
  for (const i of inputs) nodes[i] = { locked: { lastModified: 1767312000, rev: 'c0ffee0000000000000000000000000000000001', type: 'github' } };
  const flakeLock = join(dir, 'flake.lock');
  await writeFile(flakeLock, JSON.stringify({ nodes, root: 'root', version: 7 }));
  const systemctl = await makeSystemctl(join(dir, 'bin'), { 'nixos-upgrade.service': FAILED_UPGRADE_UNIT });
  const config = parseConfig({
    desyncs: Object.fromEntries(names.map((n) => [n, { maxLagRebuilds: 14, maxBehind: '14d' }])),
    stateDir, profilesDir, runDir,
    reboot: { enable: true, window: { days: ['Sun'], start: '03:00', end: '05:00', timezone: 'Europe/Berlin' } },
    exporter: { listenAddress: '127.0.0.1:0', upgradeUnit: 'nixos-upgrade.service', flakeLock },
    rollout: { prometheus: 'http://prometheus.example:9090', ring: 1 },
  });
  exp = await startTestExporter(config, { systemctl });
  const text = await (await fetch(`${exp.url}metrics`)).text();
  const lines = text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));
  const byFamily = new Map<string, number>();
  for (const l of lines) {
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0];
    byFamily.set(name, (byFamily.get(name) ?? 0) + 1);
  }
  // Every collector succeeded: the count is of a host that reports everything it can.
  expect(lines.filter((l) => l.startsWith('nixos_desync_collector_success{')).every((l) => l.endsWith(' 1'))).toBe(true);
  return { total: lines.length, byFamily };
}

describe('series budget: at most 70 + 14·D samples per host', () => {
  it.each([0, 2, 20])('%i desyncs', async (d) => {
    const { total, byFamily } = await samplesAt(d);
    // The per-desync families really are there (the count is not low because something is missing).
    if (d > 0) expect(byFamily.get('nixos_desync_pin_info')).toBe(d);
    if (d > 0) expect(byFamily.get('nixos_desync_desync_held_back')).toBe(d);
    if (d > 0) expect(byFamily.get('nixos_desync_desync_runtime_failures_total')).toBe(d);
    expect(byFamily.get('nixos_desync_system_source_info')).toBe(1);
    expect(byFamily.get('nixos_desync_rollbacks_total')).toBe(2);
    expect(byFamily.get('process_resident_memory_bytes')).toBe(1);
    expect(byFamily.get('nixos_desync_flake_input_last_modified_timestamp_seconds')).toBe(FLAKE_INPUT_SERIES_MAX);
    expect(byFamily.get('nixos_desync_rollout_held')).toBe(1);
    expect(byFamily.get('nixos_desync_rollout_healthy_since_timestamp_seconds')).toBe(1);
    expect(byFamily.get('nixos_desync_rejected_candidate_info')).toBe(2);
    expect(byFamily.get('nixos_desync_reboot_blocked')).toBe(1);
    expect(byFamily.get('nixos_desync_reboot_window_next_timestamp_seconds')).toBe(1);
    expect(total, JSON.stringify(Object.fromEntries(byFamily))).toBeLessThanOrEqual(70 + 14 * d);
    console.log(`series budget: ${d} desyncs → ${total} samples (budget ${70 + 14 * d})`);
  });
});
