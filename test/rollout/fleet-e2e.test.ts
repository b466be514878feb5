// The whole rollout story with the real Prometheus on loopback scraping the real exporters of
// three test hosts (ring 0: a, b; ring 1: c, minHosts 2, soak 3s): held (no_data) while
// Prometheus knows no ring-0 host; held (soak) right after ring 0 adopted rev-1; adopted once
// both ring-0 hosts ran it 3s; a's rollback of rev-2 rejects rev-2 on c (and on b, ring 0),
// naming a; Prometheus down → held (unreachable), exit 0. The loop runs in-process with a fake
// Nix that answers at once (test/helpers/fake-nix.ts) and an activation that switches
// <runDir>/current-system, so the exporters see what a host would show.
import { mkdir, mkdtemp, readdir, realpath, rm, symlink, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { NixAdapter } from '../../src/nix/adapter.js';
import { createPrometheusClient } from '../../src/prometheus/client.js';
import { createStateStore } from '../../src/state/store.js';
import { runUpgrade, type UpgradeResult } from '../../src/upgrade/run.js';
import type { Runner } from '../../src/util/exec.js';
import { createLogger } from '../../src/util/log.js';
import { startTestExporter, type StartedExporter } from '../fixtures/exporter/start.js';
import { candidate, fail, gateReport, ok } from '../helpers/fake-nix.js';
import { startPrometheus, sleep, type StartedPrometheus } from '../helpers/prometheus.js';
import { requireTools } from '../helpers/tools.js';
import { leaveResult } from '../helpers/upgrade-harness.js';

const ROLLOUT_RULES = join(import.meta.dirname, '../../alerts/nixos-desync-rollout.rules.yml');
const SOAK_S = 3;

interface Host {
  name: string;
  ring: number;
  dir: string;
  config: Config;
  exporter: StartedExporter | null;
  instance: string;
  unhealthy: boolean;
  lines: string[];
}

let channel = 'rev-0';
let promUrl = '';

async function makeHost(root: string, name: string, ring: number, rollout: Record<string, unknown>): Promise<Host> {
  const dir = join(root, name);
  const [stateDir, runDir, profilesDir, store] = ['state', 'run', 'profiles', 'store'].map((d) => join(dir, d)) as [string, string, string, string];
  for (const d of [stateDir, runDir, profilesDir, join(store, 'initial-system')]) await mkdir(d, { recursive: true });
  // The host runs a system the loop did not build (it is not counted for any revision).
  await symlink(join(store, 'initial-system'), join(runDir, 'current-system'));
  await symlink(join(store, 'initial-system'), join(runDir, 'booted-system'));
  const config = parseConfig({
    nixpkgs: '/channels/nixos',
    system: { build: ['sys-build'], activate: ['sys-switch'] },
    health: { settle: '0s', failedUnits: false, checks: [['health-check']] },
    stateDir, runDir, profilesDir,
    exporter: { listenAddress: '127.0.0.1:0' },
    rollout: { prometheus: { url: 'http://127.0.0.1:9', timeout: '3s' }, ring, ...rollout },
  });
  return { name, ring, dir, config, exporter: null, instance: '', unhealthy: false, lines: [] };
}

/** Nix answers at once: the channel's revision is `channel`; every gate passes. */
const nix: NixAdapter = {
  updateChannel: async () => undefined,
  resolveCandidate: async () => candidate(channel),
  buildGates: async (reqs) => gateReport(reqs),
  addRoot: async () => undefined,
};

/** sys-build leaves ./result; sys-switch makes the toplevel the running system; health-check says `unhealthy`. */
function runner(h: Host): Runner {
  return async (argv, opts) => {
    if (argv[0] === 'sys-build') {
      await leaveResult(opts, h.config.stateDir);
      return ok(argv);
    }
    if (argv[0] === 'sys-switch') {
      const link = join(h.config.runDir, 'current-system');
      await symlink(opts.env!.NIXOS_DESYNC_TOPLEVEL!, `${link}.new`);
      await rename(`${link}.new`, link);
      return ok(argv);
    }
    if (argv[0] === 'health-check') return h.unhealthy ? fail(argv, 'unit web.service failed') : ok(argv);
    return ok(argv);
  };
}

async function upgrade(h: Host, opts: { retry?: boolean } = {}): Promise<UpgradeResult> {
  const config = { ...h.config, rollout: { ...h.config.rollout!, prometheus: { ...h.config.rollout!.prometheus, url: promUrl } } };
  h.lines.length = 0;
  return runUpgrade({ config, nix, run: runner(h), store: createStateStore(config.stateDir), logger: createLogger({ write: (l) => void h.lines.push(l) }), env: { PATH: '/bin' } }, opts);
}

const running = (h: Host): Promise<string> => realpath(join(h.config.runDir, 'current-system'));

const ok_ = requireTools('prometheus');

describe.skipIf(!ok_)('fleet rollout end to end: real Prometheus, three hosts in two rings', () => {
  let root = '';
  let prom: StartedPrometheus | null = null;
  const hosts: Host[] = [];
  let a: Host, b: Host, c: Host;
  let failed = false;
  beforeEach(({ onTestFailed }) => onTestFailed(() => void (failed = true)));

  const promConfig = (targets: Host[]): string => [
    'global:',
    '  scrape_interval: 500ms',
    '  scrape_timeout: 500ms',
    '  evaluation_interval: 500ms',
    'rule_files:',
    `  - ${JSON.stringify(ROLLOUT_RULES)}`,
    'scrape_configs:',
    '  - job_name: nixos-desync',
    '    static_configs:',
    `      - targets: [${targets.map((t) => JSON.stringify(t.instance)).join(', ')}]`,
    '',
  ].join('\n');

  async function query(expr: string): Promise<Array<{ labels: Record<string, string>; value: number }>> {
    return createPrometheusClient({ url: promUrl, bearerTokenFile: null, basicAuth: null, caFile: null, timeout: '5s' }).queryVector(expr);
  }

  /** Polls a query until `accept` says yes (at most 15 s). */
  async function until(expr: string, accept: (v: Array<{ labels: Record<string, string>; value: number }>) => boolean): Promise<Array<{ labels: Record<string, string>; value: number }>> {
    const deadline = Date.now() + 15_000;
    let last: unknown = null;
    for (;;) {
      try {
        const v = await query(expr);
        if (accept(v)) return v;
        last = v;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) throw new Error(`Prometheus never answered ${expr} as expected; last: ${JSON.stringify(last)}`);
      await sleep(100);
    }
  }
  const value = (v: Array<{ value: number }>): number | undefined => v[0]?.value;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'nixos-desync-rollout-'));
    a = await makeHost(root, 'a', 0, {});
    b = await makeHost(root, 'b', 0, {});
    c = await makeHost(root, 'c', 1, { minHosts: 2, soak: `${SOAK_S}s` });
    hosts.push(a, b, c);
    for (const h of hosts) {
      h.exporter = await startTestExporter(h.config);
      h.instance = new URL(h.exporter.url).host;
    }
    // First Prometheus scrapes ring 1 only: it knows no host of ring 0.
    prom = await startPrometheus(root, promConfig([c]));
    promUrl = prom.url;
  }, 30_000);

  afterAll(async () => {
    await prom?.stop();
    for (const h of hosts) await h.exporter?.close();
    if (failed) {
      console.error(`----- prometheus -----\n${prom?.proc.log().slice(-8000)}`);
      for (const h of hosts) console.error(`----- ${h.name} last run -----\n${h.lines.join('')}`);
    }
    if (root) await rm(root, { recursive: true, force: true });
  }, 20_000);

  it('1. Prometheus knows no host of ring 0: ring 1 is held (no_data), exit 0, nothing changes', async () => {
    await until('nixos_desync_rollout_info{ring="1"}', (v) => v.length === 1);
    channel = 'rev-1';
    const before = await running(c);
    const res = await upgrade(c);
    expect(res).toMatchObject({ result: 'held', exitCode: 0, held: { reason: 'no_data' } });
    expect(res.held!.message).toMatch(/Prometheus knows no host of ring 0/);
    expect(res.stages).not.toHaveProperty('gate');
    expect(await running(c)).toBe(before);
    const state = (await createStateStore(c.config.stateDir).readState({ repair: false })).value;
    expect(state.committed.setId).toBeNull();
    expect(state.runs.total.held).toBe(1);
    expect(state.rollout.held).toMatchObject({ reason: 'no_data', revision: 'rev-1' });
    expect(await readdir(join(c.config.stateDir, 'sets')).catch(() => [])).toEqual([]);
    await until('nixos_desync_rollout_held{reason="no_data"} == 1', (v) => v.length === 1);
  });

  it('2. ring 0 adopts rev-1 at once; ring 1 is held (soak) while ring 0 has run it less than the soak', async () => {
    await prom!.reload(promConfig(hosts));
    await until('count(nixos_desync_rollout_info)', (v) => value(v) === 3);
    for (const h of [a, b]) {
      const res = await upgrade(h);
      expect(res, h.lines.join('')).toMatchObject({ result: 'success', exitCode: 0 });
      expect(h.lines.join('')).toMatch(/rollout +ring 0: no host of the fleet rejected rev-1/);
    }
    await until('count(nixos_desync_rollout_healthy_since_timestamp_seconds{revision="rev-1"})', (v) => value(v) === 2);
    const before = await running(c);
    const res = await upgrade(c);
    expect(res).toMatchObject({ result: 'held', exitCode: 0, held: { reason: 'soak' } });
    expect(res.held!.message).toMatch(/^waiting for 2 hosts of ring 0 healthy on rev-1 for 3s: 2 of the 2 hosts of ring 0 run it healthy, the longest for [\d.]+s; 0 for 3s or longer$/);
    expect(await running(c)).toBe(before);
    await until('nixos_desync_rollout_held{reason="soak"} == 1', (v) => v.length === 1);
  });

  it('3. once both ring-0 hosts ran rev-1 healthy for the soak (as the recording rule shows too), ring 1 adopts it', async () => {
    await until('ring_revision:nixos_desync_rollout_healthy_hosts:count{ring="0",revision="rev-1"}', (v) => value(v) === 2);
    await until(`count(nixos_desync:rollout_healthy_seconds{ring="0",revision="rev-1"} >= ${SOAK_S})`, (v) => value(v) === 2);
    const before = await running(c);
    const res = await upgrade(c);
    expect(res, c.lines.join('')).toMatchObject({ result: 'success', exitCode: 0, candidate: { revision: 'rev-1' } });
    expect(c.lines.join('')).toMatch(/rollout +ring 0 qualified rev-1: 2 of 2 hosts ran it healthy for 3s or longer \(2 needed\)/);
    expect(await running(c)).not.toBe(before);
    const state = (await createStateStore(c.config.stateDir).readState({ repair: false })).value;
    expect(state.rollout).toMatchObject({ held: null, adopted: { revision: 'rev-1' } });
    await until('sum(nixos_desync_rollout_held{instance="' + c.instance + '"}) or vector(0)', (v) => value(v) === 0);
    await until('ring_revision:nixos_desync_rollout_healthy_hosts:count{ring="1",revision="rev-1"}', (v) => value(v) === 1);
  });

  it("4. a's rollback of rev-2 rejects rev-2 on ring 1 and on the rest of ring 0, naming a", async () => {
    channel = 'rev-2';
    a.unhealthy = true;
    const ra = await upgrade(a);
    expect(ra).toMatchObject({ result: 'rolled_back', exitCode: 1 });
    await until('nixos_desync_rejected_candidate_info{revision="rev-2"}', (v) => v.length === 1 && v[0]!.labels.instance === a.instance);
    for (const h of [c, b]) {
      const before = await running(h);
      const res = await upgrade(h);
      expect(res).toMatchObject({ result: 'failure', exitCode: 1, error: { code: 'E_REJECTED' } });
      expect(res.error!.message).toContain(`candidate rev-2 was rejected by ${a.instance} (job nixos-desync): a rollback there found it unhealthy`);
      expect(res.stages).not.toHaveProperty('gate');
      expect(await running(h)).toBe(before);
    }
    await until('revision:nixos_desync_rejected_candidate_hosts:count{revision="rev-2"}', (v) => value(v) === 1);
  });

  it('5. Prometheus down: ring 1 is held (unreachable), exit 0, and its exporter says so', async () => {
    await prom!.stop();
    channel = 'rev-3';
    const before = await running(c);
    const res = await upgrade(c);
    expect(res).toMatchObject({ result: 'held', exitCode: 0, held: { reason: 'unreachable' } });
    expect(res.held!.message).toMatch(/Prometheus cannot answer \(Prometheus http:\/\/127\.0\.0\.1:\d+: unreachable: connect ECONNREFUSED/);
    expect(await running(c)).toBe(before);
    const deadline = Date.now() + 5_000;
    let text = '';
    while (Date.now() < deadline && !/nixos_desync_rollout_held\{reason="unreachable"\} 1/.test(text)) {
      text = await (await fetch(`${c.exporter!.url}metrics`)).text();
      await sleep(50);
    }
    expect(text).toMatch(/nixos_desync_rollout_held\{reason="unreachable"\} 1/);
    expect(text).toMatch(/nixos_desync_runs_total\{result="held"\} 3/);
    expect(text).toMatch(/nixos_desync_rollout_held_since_timestamp_seconds \d+/);
  });
});
