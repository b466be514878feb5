// Drives runUpgrade in-process with the fake Nix of fake-nix.ts: one run released call by call,
// and a byte-for-byte snapshot of a state directory (names, modes, file bytes, link targets).
import { lstat, mkdir, readdir, readFile, readlink, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { GateRequest } from '../../src/nix/adapter.js';
import { recoverOnly, runUpgrade, type UpgradeResult } from '../../src/upgrade/run.js';
import { createStateStore } from '../../src/state/store.js';
import { createLogger } from '../../src/util/log.js';
import type { RunOptions } from '../../src/util/exec.js';
import { CallQueue, candidate, createFakeNix, createFakeRunner, fail, gateReport, ok, type PendingCall } from './fake-nix.js';

/** Two desyncs: hm (budget 2) and syn (with a check); the system build is `sys-build`, activation `sys-switch`. */
import type { Shield } from '../../src/util/shield.js';
export function makeConfig(stateDir: string, extra: Record<string, unknown> = {}) {
  return parseConfig({
    nixpkgs: '/channels/nixos',
    channel: { name: 'nixos', update: true },
    desyncs: {
      hm: { requireBuilds: ['home-manager'], maxLagRebuilds: 2 },
      syn: { requireBuilds: ['matrix-synapse'], checks: [['check-syn', '--quick']] },
    },
    system: { build: ['sys-build'], activate: ['sys-switch'] },
    // The fake runner answers every command; systemctl is not asked for (failedUnits off).
    health: { settle: '0s', failedUnits: false },
    stateDir,
    runDir: join(stateDir, '..', 'run'),
    profilesDir: join(stateDir, '..', 'profiles'),
    ...extra,
  });
}
export type TestConfig = ReturnType<typeof makeConfig>;

export interface Harness {
  q: CallQueue;
  stateDir: string;
  lines: string[];
  start(opts?: { dryRun?: boolean; retry?: boolean; now?: () => Date; signal?: AbortSignal; shield?: Shield }): Promise<UpgradeResult>;
  /** `nixos-desync recover` on the same state directory. */
  recover(): Promise<string | null>;
}

export function harness(config: TestConfig): Harness {
  const q = new CallQueue();
  const lines: string[] = [];
  const deps = (o: { now?: () => Date; signal?: AbortSignal; shield?: Shield } = {}) => ({
    config, nix: createFakeNix(q), run: createFakeRunner(q), store: createStateStore(config.stateDir), logger: createLogger({ write: (l: string) => lines.push(l) }),
    now: o.now, signal: o.signal, shield: o.shield, env: { PATH: '/bin' },
  });
  return {
    q,
    lines,
    stateDir: config.stateDir,
    start: (opts = {}) => runUpgrade(deps(opts), { dryRun: opts.dryRun, retry: opts.retry }),
    recover: () => recoverOnly(deps()),
  };
}

export interface DriveOptions { failing?: string[]; evalFailing?: string[]; checkFails?: boolean; update?: boolean }

/** Releases fetch, candidate, gate (with `failing`/`evalFailing` desyncs) and syn's check when syn passed. */
export async function drive(h: Harness, rev: string, o: DriveOptions = {}): Promise<void> {
  if (o.update !== false) (await h.q.next('updateChannel')).resolve(undefined);
  (await h.q.next('resolveCandidate')).resolve(candidate(rev));
  const g = await h.q.next('buildGates');
  const reqs = g.args[0] as GateRequest[];
  g.resolve(gateReport(reqs, o.failing, o.evalFailing));
  const failed = [...(o.failing ?? []), ...(o.evalFailing ?? [])];
  if (reqs.some((r) => r.desync === 'syn' && !failed.includes(r.desync))) {
    const c = await h.q.next('run');
    const argv = c.args[0] as string[];
    c.resolve(o.checkFails ? fail(argv, 'check says no') : ok(argv));
  }
}

/**
 * What a system build leaves: a built toplevel (a directory next to the state dir) linked as
 * ./result in the build's working directory.
 */
export async function leaveResult(opts: RunOptions, stateDir: string): Promise<string> {
  const top = join(stateDir, '..', 'store', `toplevel-${Math.random().toString(16).slice(2, 10)}`);
  await mkdir(top, { recursive: true });
  await symlink(top, join(opts.cwd!, 'result'));
  return top;
}

/** What `sys-switch` does to the host: `<runDir>/current-system` (runDir next to the state dir) names the toplevel it activated. */
export async function switchTo(stateDir: string, toplevel: string): Promise<void> {
  const runDir = join(stateDir, '..', 'run');
  await mkdir(runDir, { recursive: true });
  await rm(join(runDir, 'current-system'), { force: true });
  await symlink(toplevel, join(runDir, 'current-system'));
}

/** Answers a `sys-switch` call (an activation or a rollback) as a working activation does: it switches, then exits 0. */
export async function answerSwitch(c: PendingCall, stateDir: string): Promise<string> {
  const argv = c.args[0] as string[];
  expect(argv).toEqual(['sys-switch']);
  const top = (c.args[1] as RunOptions).env!.NIXOS_DESYNC_TOPLEVEL!;
  await switchTo(stateDir, top);
  c.resolve(ok(argv));
  return top;
}

export interface SystemOptions { systemFails?: boolean; activateFails?: boolean }

/** Releases the system build (leaving ./result) and the activation (`sys-switch`, which switches current-system unless it fails). */
export async function releaseSystem(h: Harness, o: SystemOptions = {}): Promise<void> {
  const b = await h.q.next('run');
  const argv = b.args[0] as string[];
  expect(argv).toEqual(['sys-build']);
  if (!o.systemFails) await leaveResult(b.args[1] as RunOptions, h.stateDir);
  b.resolve(o.systemFails ? fail(argv, 'error: system build failed', 100) : ok(argv));
  if (o.systemFails) return;
  const a = await h.q.next('run');
  if (o.activateFails) {
    expect(a.args[0]).toEqual(['sys-switch']);
    a.resolve(fail(a.args[0] as string[]));
  } else {
    await answerSwitch(a, h.stateDir);
  }
}

export async function fullRun(config: TestConfig, rev: string, o: DriveOptions & SystemOptions = {}) {
  const h = harness(config);
  const p = h.start();
  await drive(h, rev, o);
  await releaseSystem(h, o);
  return { res: await p, h };
}

/** Every entry under `dir` with its type, mode and content (file bytes, link target). */
export async function snapshotTree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string, rel: string): Promise<void> => {
    for (const name of (await readdir(d)).sort()) {
      const p = join(d, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p);
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out[r] = `link ${mode} -> ${await readlink(p)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        await walk(p, r);
      } else out[r] = `file ${mode} ${(await readFile(p)).toString('base64')}`;
    }
  };
  await walk(dir, '');
  return out;
}
