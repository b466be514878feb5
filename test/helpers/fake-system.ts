// Step 8b's unit tests: a fake system whose toplevel is the pin revisions its build saw, so its
// health can depend on which revision of each desync it runs; one loop run with a fake Nix.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runUpgrade, type UpgradeResult } from '../../src/upgrade/run.js';
import { createStateStore } from '../../src/state/store.js';
import { createLogger } from '../../src/util/log.js';
import type { GateRequest } from '../../src/nix/adapter.js';
import type { HealthFailure, SystemSide } from '../../src/system/system.js';
import { CallQueue, candidate, createFakeNix, createFakeRunner, gateReport } from './fake-nix.js';
import type { TestConfig } from './upgrade-harness.js';

export type Revs = Record<string, string>;

/** A system whose toplevel is the pin revisions its build saw; `broken` says what fails once it runs. */
export function fakeSystem(stateDir: string, broken: (revs: Revs) => HealthFailure[]) {
  const built = new Map<string, Revs>();
  const s = { current: '/top/initial', activations: [] as string[], builds: 0, rollbacks: 0 };
  const side: SystemSide = {
    mode: 'switch',
    gated: true,
    async build() {
      s.builds += 1;
      const revs: Revs = {};
      for (const f of (await readdir(join(stateDir, 'pins'))).sort()) {
        revs[f.replace(/\.nix$/, '')] = /revision = "([^"]*)"/.exec(await readFile(join(stateDir, 'pins', f), 'utf8'))![1]!;
      }
      const toplevel = `/top/${Object.entries(revs).map(([n, r]) => `${n}-${r}`).join('_')}`;
      built.set(toplevel, revs);
      return { toplevel, command: 'fake-build', durationMs: 1 };
    },
    current: async () => s.current,
    failedUnits: async () => [],
    async activate(toplevel) {
      s.activations.push(toplevel);
      s.current = toplevel;
      return `activated ${toplevel}`;
    },
    async health(toplevel) {
      const failures = broken(built.get(toplevel) ?? {});
      return { ok: failures.length === 0, failures, checked: { units: true, checks: 0 } };
    },
    finalize: async () => null,
    async rollback(previous) {
      s.rollbacks += 1;
      s.current = previous ?? s.current;
      return `rolled back to ${previous}`;
    },
  };
  return { side, s };
}

/** One run at channel revision `rev` (every gate passes). */
export async function run(cfg: TestConfig, sys: SystemSide, rev: string, lines: string[] = [], now?: () => Date): Promise<UpgradeResult> {
  const q = new CallQueue();
  const p = runUpgrade({
    config: cfg, nix: createFakeNix(q), run: createFakeRunner(q), store: createStateStore(cfg.stateDir),
    logger: createLogger({ write: (l) => lines.push(l) }), system: sys, env: { PATH: '/bin' }, ...(now ? { now } : {}),
  });
  (await q.next('updateChannel')).resolve(undefined);
  (await q.next('resolveCandidate')).resolve(candidate(rev));
  const g = await q.next('buildGates');
  g.resolve(gateReport(g.args[0] as GateRequest[]));
  return p;
}

