// End to end with the real tools: the exporter (`nixos-desync serve`, as a child process)
// on a fixture host with one breached and one lagging desync → a real Prometheus (1 s
// scrape/evaluation, the shipped rule file unmodified) → a real Alertmanager → a webhook
// receiver run by this test. Also runs every dashboard query against that Prometheus.
//
// The fixture state is written with the state store (no Nix here: Nix-store tests live in
// test/integration/real-nix.test.ts because of garbage-collection races). Every process is
// spawned from an argv array, stopped by its PID (SIGTERM, SIGKILL after 5 s), and its
// logs are printed when anything fails.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { emptyState, type MachineState, type Pin } from '../../src/state/model.js';
import { createStateStore } from '../../src/state/store.js';
import { buildSystemGenerations, FIXTURE_DIR, RUNNING_SOURCES } from '../fixtures/exporter/build.js';
import { FAILED_UPGRADE_UNIT, makeSystemctl } from '../fixtures/exporter/systemctl.js';
import { sleep, startPrometheus, startProc, startReady, type Proc } from '../helpers/prometheus.js';
import { requireTools } from '../helpers/tools.js';
import { queries, type Json } from './grafana.js';
import { substituteGrafanaVariables } from './promql.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RULES = path.join(ROOT, 'alerts/nixos-desync.rules.yml');
const FLEET_RULES = path.join(ROOT, 'alerts/nixos-desync-fleet.rules.yml');
const ROLLOUT_RULES = path.join(ROOT, 'alerts/nixos-desync-rollout.rules.yml');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
const DASHBOARDS = path.join(ROOT, 'dashboards');
const JOB = 'nixos-desync';

/** The whole file must stay well under a minute, even when every wait runs to its limit. */
const FILE_BUDGET_MS = 55_000;
const LOG_LIMIT = 64 * 1024;

// ---------------------------------------------------------------------------------------
// Processes and waits (start-up and stop: test/helpers/prometheus.ts)

let fileDeadline = Date.now() + FILE_BUDGET_MS;
const procs: Proc[] = [];

/** Every process started here, to stop them all and print their logs when a test failed. */
function track<T extends Proc>(p: T): T {
  procs.push(p);
  return p;
}

/** Polls `fn` until it returns a value other than undefined; throws with `what` at the deadline. */
async function waitUntil<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>, last?: () => string): Promise<T> {
  const deadline = Math.min(Date.now() + timeoutMs, fileDeadline);
  let lastError = '';
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `; last error: ${lastError}` : ''}${last ? `; last seen: ${last().slice(0, 2000)}` : ''}`);
    }
    await sleep(100);
  }
}

async function getJson(url: string): Promise<Json> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  const body = await res.text();
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}: ${body.slice(0, 500)}`);
  return JSON.parse(body);
}

// ---------------------------------------------------------------------------------------
// Webhook receiver

interface Notification {
  path: string;
  status: 'firing' | 'resolved';
  receiver: string;
  alerts: Array<{ status: string; labels: Record<string, string>; annotations: Record<string, string> }>;
}

function startReceiver(): Promise<{ server: Server; url: string; received: Notification[] }> {
  const received: Notification[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Omit<Notification, 'path'>;
        received.push({ ...body, path: req.url ?? '' });
        res.writeHead(200).end();
      } catch {
        res.writeHead(400).end();
      }
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, url: `http://127.0.0.1:${port}`, received });
    });
  });
}

// ---------------------------------------------------------------------------------------
// Fixture host: state written by the state store, generations as fixture symlinks

const HOUR = 3600_000;
const DAY = 24 * HOUR;

function setId(at: Date, suffix: string): string {
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${suffix}`;
}

function pin(n: number, revision: string, desyncAge: number, pinnedAt: Date): Pin {
  const p = `/nix/store/${String(n).repeat(32)}-nixpkgs`;
  return { path: p, storePath: p, revision, desyncAge, pinnedAt: pinnedAt.toISOString() };
}

const CONFIG_DESYNCS = {
  insync: { maxLagRebuilds: 14, maxBehind: '14d' },
  // Lag 2 of 4 rebuilds: exactly half of its budget → NixosDesyncLagging (budget="rebuilds").
  lagging: { maxLagRebuilds: 4, maxBehind: '14d' },
  // Lag 3 ≥ 2 and 8 days behind ≥ 7d, breached in the last run → NixosDesyncMaxAgeBreached.
  breached: { maxLagRebuilds: 2, maxBehind: '7d' },
};

/** One breached and one lagging desync, the last run a breach; times relative to `t0`. */
function brokenState(t0: number, id: string): MachineState {
  const at = (ms: number): string => new Date(t0 - ms).toISOString();
  return {
    version: 1,
    committed: {
      setId: id,
      at: at(8 * HOUR),
      pins: {
        insync: pin(1, 'c0ffee0000000000000000000000000000000003', 0, new Date(t0 - 8 * HOUR)),
        lagging: pin(2, 'c0ffee0000000000000000000000000000000002', 2, new Date(t0 - 2 * DAY)),
        breached: pin(3, 'c0ffee0000000000000000000000000000000001', 3, new Date(t0 - 9 * DAY)),
      },
    },
    desyncs: {
      insync: { attempts: { passed: 9, failed: 0 }, consecutiveFailures: 0, lastAttempt: { at: at(8 * HOUR), result: 'passed' }, lastSuccessAt: at(8 * HOUR), behindSince: null, breached: false, breachReason: null },
      lagging: { attempts: { passed: 7, failed: 2 }, consecutiveFailures: 2, lastAttempt: { at: at(8 * HOUR), result: 'failed', error: 'home-manager: build failed' }, lastSuccessAt: at(2 * DAY), behindSince: at(32 * HOUR), breached: false, breachReason: null },
      breached: { attempts: { passed: 6, failed: 3 }, consecutiveFailures: 3, lastAttempt: { at: at(8 * HOUR), result: 'failed', error: 'matrix-synapse: check failed' }, lastSuccessAt: at(9 * DAY), behindSince: at(8 * DAY), breached: true, breachReason: 'lag 3 ≥ maxLagRebuilds 2' },
    },
    runs: {
      total: { success: 6, failure: 2, breach: 1 },
      last: { id, at: at(8 * HOUR + 750_000), finishedAt: at(8 * HOUR), result: 'breach', durationSeconds: 750, stages: { fetch: 12.5, candidate: 2, gate: 600, system_build: 120, commit: 0.5, activate: 15 }, error: 'desync breached breached its budget' },
      lastSuccessAt: at(32 * HOUR),
    },
  };
}

/**
 * A rollout host too (ring 1, so every rollout panel has data): held (soak) for 2 hours, running
 * the loop's build (RUNNING_SOURCES) of the revision it adopted 8 hours ago, one candidate
 * rejected by a rollback (its health gate failed). As the current state version (the v1 document above, migrated, plus
 * the rollout fields).
 */
function withRollout(v1: MachineState, t0: number): MachineState {
  const fresh = emptyState();
  const at = (ms: number): string => new Date(t0 - ms).toISOString();
  const rev = RUNNING_SOURCES.nixpkgs.revision;
  return {
    ...fresh, ...v1, version: fresh.version,
    runs: { ...v1.runs, total: { ...fresh.runs.total, ...v1.runs.total } },
    rejected: [{ id: '/nix/store/r5', revision: 'c0ffee0000000000000000000000000000000005', path: '/nix/store/r5', runId: 'r5', at: at(3 * HOUR), reason: 'health' }],
    // That candidate's rollback, and the health gate it failed (the host dashboard's health row).
    rollbacks: { total: { activation: 0, health: 1 }, last: { runId: 'r5', at: at(3 * HOUR), reason: 'health', toplevel: '/nix/store/r5-system', previous: null, error: 'synapse.service failed' } },
    health: { lastSuccess: false, lastAt: at(3 * HOUR) },
    rollout: { adopted: { revision: rev, since: at(8 * HOUR) }, held: { reason: 'soak', since: at(2 * HOUR), revision: 'c0ffee0000000000000000000000000000000006', message: 'waiting' } },
  };
}

/** The next run: `breached` passed its gate (lag 0, no longer breached); `lagging` still lags. */
function fixedState(prev: MachineState, now: number, id: string): MachineState {
  const at = new Date(now).toISOString();
  const s: MachineState = structuredClone(prev);
  s.committed = { setId: id, at, pins: { ...s.committed.pins, breached: pin(4, 'c0ffee0000000000000000000000000000000004', 0, new Date(now)) } };
  s.committed.pins.insync = { ...s.committed.pins.insync!, revision: 'c0ffee0000000000000000000000000000000004' };
  const b = s.desyncs.breached!;
  s.desyncs.breached = { ...b, attempts: { passed: b.attempts.passed + 1, failed: b.attempts.failed }, consecutiveFailures: 0, lastAttempt: { at, result: 'passed' }, lastSuccessAt: at, behindSince: null, breached: false, breachReason: null };
  s.runs = {
    total: { ...s.runs.total, success: s.runs.total.success + 1 },
    last: { id, at, finishedAt: at, result: 'success', durationSeconds: 600, stages: { fetch: 10, candidate: 2, gate: 480, system_build: 100, commit: 0.5, activate: 7.5 }, error: null },
    lastSuccessAt: at,
  };
  return s;
}

async function writeCommitted(stateDir: string, s: MachineState): Promise<void> {
  const store = createStateStore(stateDir);
  await store.ensureLayout();
  const id = s.committed.setId!;
  await store.createSet(id);
  await store.writeSetPins(id, s.committed.pins);
  await store.pointPinsAt(id);
  await store.writeState(s);
}

// ---------------------------------------------------------------------------------------

const ok = requireTools('prometheus', 'prometheus-alertmanager', 'promtool');

describe.skipIf(!ok)('end to end: exporter → Prometheus (shipped rules) → Alertmanager → webhook', () => {
  let dir = '';
  let stateDir = '';
  let receiver: Awaited<ReturnType<typeof startReceiver>> | null = null;
  let prom = '';
  let instance = '';
  let state: MachineState;
  let failed = false;
  const t0 = Date.now();

  beforeEach(({ onTestFailed }) => onTestFailed(() => void (failed = true)));

  beforeAll(async () => {
    fileDeadline = Date.now() + FILE_BUDGET_MS;
    try {
      dir = await mkdtemp(path.join(tmpdir(), 'nixos-desync-e2e-'));
      stateDir = path.join(dir, 'state');
      const profilesDir = path.join(dir, 'profiles');
      const runDir = path.join(dir, 'run');
      // Booted kernel ≠ current system's (reboot required); 3 generations, the newest not activated.
      await buildSystemGenerations({ profilesDir, runDir, storeDir: path.join(dir, 'store') });
      state = withRollout(brokenState(t0, setId(new Date(t0 - 8 * HOUR), 'a1b2')), t0);
      await writeCommitted(stateDir, state);
      // Monitoring too: nixos-upgrade.service through the stand-in systemctl (found on PATH,
      // as on a host) and a flake lock, so every dashboard panel has data.
      const binDir = path.join(dir, 'bin');
      await makeSystemctl(binDir, { 'nixos-upgrade.service': FAILED_UPGRADE_UNIT });
      const flakeLock = path.join(dir, 'flake.lock');
      await writeFile(flakeLock, readFileSync(path.join(FIXTURE_DIR, 'flake.lock')));
      const configFile = path.join(dir, 'config.json');
      await writeFile(configFile, JSON.stringify({ desyncs: CONFIG_DESYNCS, stateDir, profilesDir, runDir, exporter: { listenAddress: '127.0.0.1:9793', upgradeUnit: 'nixos-upgrade.service', flakeLock },
        rollout: { prometheus: 'http://127.0.0.1:9', ring: 1 } }, null, 2));

      // The exporter binds port 0 and logs the address it got: no port race.
      const exporter = track(startProc('exporter', process.execPath, [CLI, 'serve', '--config', configFile, '--web.listen-address', '127.0.0.1:0'],
        { ...process.env, PATH: `${binDir}:${process.env.PATH ?? ''}` }));
      const exporterUrl = await waitUntil('the exporter to log its address', 15_000, async () => {
        if (exporter.exit) throw new Error(`exporter exited (${JSON.stringify(exporter.exit)})`);
        for (const line of exporter.log().split('\n')) {
          if (!line.startsWith('{')) continue;
          const l = JSON.parse(line) as { msg?: string; url?: string };
          if (l.msg === 'listening' && l.url) return l.url.replace(/\/$/, '');
        }
        return undefined;
      });
      instance = new URL(exporterUrl).host;

      receiver = await startReceiver();
      const amDir = path.join(dir, 'alertmanager');
      const amConfig = path.join(dir, 'alertmanager.yml');
      // Like alerts/examples/alertmanager.yml (critical pages), with test timings.
      await writeFile(amConfig, [
        'route:',
        '  receiver: chat',
        '  group_by: [alertname, instance, desync]',
        '  group_wait: 1s',
        '  group_interval: 1s',
        '  repeat_interval: 1h',
        '  routes:',
        '    - receiver: pager',
        '      matchers:',
        '        - severity="critical"',
        'receivers:',
        '  - name: pager',
        '    webhook_configs:',
        `      - url: ${JSON.stringify(`${receiver.url}/pager`)}`,
        '        send_resolved: true',
        '  - name: chat',
        '    webhook_configs:',
        `      - url: ${JSON.stringify(`${receiver.url}/chat`)}`,
        '        send_resolved: true',
        '',
      ].join('\n'));
      const am = await startReady('alertmanager', 'prometheus-alertmanager', (port) => [
        `--config.file=${amConfig}`,
        `--storage.path=${amDir}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
        '--log.level=debug',
      ]);
      track(am.proc);

      const promConfig = path.join(dir, 'prometheus-checked.yml');
      const promText = [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        '  evaluation_interval: 1s',
        'rule_files:',
        `  - ${JSON.stringify(RULES)}`,
        `  - ${JSON.stringify(FLEET_RULES)}`,
        `  - ${JSON.stringify(ROLLOUT_RULES)}`,
        'alerting:',
        '  alertmanagers:',
        '    - static_configs:',
        `        - targets: [${JSON.stringify(new URL(am.url).host)}]`,
        'scrape_configs:',
        `  - job_name: ${JOB}`,
        '    static_configs:',
        `      - targets: [${JSON.stringify(instance)}]`,
        '',
      ].join('\n');
      await writeFile(promConfig, promText);
      const check = spawnSync('promtool', ['check', 'config', promConfig], { encoding: 'utf8', timeout: 15_000 });
      expect(check.status, `promtool check config:\n${check.stdout}\n${check.stderr}`).toBe(0);
      await mkdir(path.join(dir, 'prometheus'));
      const p = await startPrometheus(path.join(dir, 'prometheus'), promText);
      track(p.proc);
      prom = p.url;
    } catch (err) {
      failed = true;
      throw err;
    }
  }, 40_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    if (receiver) await new Promise<void>((r) => receiver!.server.close(() => r()));
    if (failed) {
      for (const p of procs) {
        console.error(`----- ${p.name} (pid ${p.child.pid}, exit ${JSON.stringify(p.exit)}) -----\n${p.log().slice(-LOG_LIMIT)}`);
      }
      console.error(`----- webhook notifications -----\n${JSON.stringify(receiver?.received ?? [], null, 1).slice(-LOG_LIMIT)}`);
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 20_000);

  async function query(expr: string): Promise<{ status: string; data: { resultType: string; result: Json[] } }> {
    return getJson(`${prom}/api/v1/query?query=${encodeURIComponent(expr)}`);
  }

  async function activeAlerts(): Promise<Json[]> {
    return (await getJson(`${prom}/api/v1/alerts`)).data.alerts as Json[];
  }

  const notificationsFor = (path: string, status: string): Notification[] =>
    receiver!.received.filter((n) => n.path === path && n.alerts.some((a) => a.status === status && a.labels.alertname === 'NixosDesyncMaxAgeBreached'));

  it('scrapes the exporter as job "nixos-desync" with the shipped rules loaded', async () => {
    // Prometheus hands new targets to its scrapers at most every 5 s (discovery manager
    // throttle), so the first scrape comes ~5 s after start, whatever scrape_interval says.
    await waitUntil('the target to be up', 15_000, async () => {
      const r = await query(`up{job="${JOB}"} == 1`);
      return r.data.result.length === 1 ? true : undefined;
    });
    const rules = (await getJson(`${prom}/api/v1/rules`)).data.groups as Json[];
    const fleetRecords = (parseYaml(await readFile(FLEET_RULES, 'utf8')) as { groups: { rules: { record: string }[] }[] }).groups.flatMap((g) => g.rules.map((r) => r.record));
    expect(fleetRecords.length).toBeGreaterThan(20);
    const rolloutRecords = (parseYaml(await readFile(ROLLOUT_RULES, 'utf8')) as { groups: { rules: { record: string }[] }[] }).groups.flatMap((g) => g.rules.map((r) => r.record));
    expect(rules.flatMap((g) => g.rules.map((r: Json) => r.name)).sort()).toEqual([
      'NixosDesyncCollectorFailing', 'NixosDesyncExporterDown', 'NixosDesyncFlakeInputOutOfDate', 'NixosDesyncLagging', 'NixosDesyncMaxAgeBreached',
      'NixosDesyncNixpkgsOutOfDate', 'NixosDesyncRebootOverdue', 'NixosDesyncRebootRequired', 'NixosDesyncRollbackFailed', 'NixosDesyncRolledBack', 'NixosDesyncRolloutHeld', 'NixosDesyncUnverifiedSystem', 'NixosDesyncUpgradeFailing', 'NixosDesyncUpgradeStale', 'nixos_desync:exporter_target:known',
      ...fleetRecords, ...rolloutRecords,
    ].sort());
    for (const g of rules) for (const r of g.rules) expect(r.health, `${r.name}: ${r.lastError ?? ''}`).toBe('ok');
  }, 20_000);

  it('pages NixosDesyncMaxAgeBreached for desync "breached" through Alertmanager', async () => {
    const [n] = await waitUntil('a firing NixosDesyncMaxAgeBreached webhook', 20_000,
      async () => { const f = notificationsFor('/pager', 'firing'); return f.length > 0 ? f : undefined; },
      () => JSON.stringify(receiver!.received));
    expect(n!.receiver).toBe('pager');
    const firing = n!.alerts.filter((a) => a.labels.alertname === 'NixosDesyncMaxAgeBreached');
    expect(firing).toHaveLength(1);
    const a = firing[0]!;
    expect(a.labels).toMatchObject({ alertname: 'NixosDesyncMaxAgeBreached', desync: 'breached', severity: 'critical', job: JOB, instance });
    // The description's template queries ran against the real Prometheus.
    expect(a.annotations.description).toContain('Lag: 3 rebuilds (budget 2).');
    expect(a.annotations.description).toMatch(/Behind the channel for 8d /);
    expect(a.annotations.summary).toBe(`Desync breached on ${instance} breached its budget`);
    expect(a.annotations.runbook_url).toMatch(/docs\/runbooks\.md#nixosdesyncmaxagebreached$/);
    // Only the breached desync pages.
    const paged = receiver!.received.filter((x) => x.path === '/pager').flatMap((x) => x.alerts.map((y) => y.labels.desync));
    expect(new Set(paged)).toEqual(new Set(['breached']));
  }, 25_000);

  it('NixosDesyncLagging is active for desync "lagging" (and only for it)', async () => {
    const lagging = await waitUntil('NixosDesyncLagging in /api/v1/alerts', 15_000, async () => {
      const l = (await activeAlerts()).filter((a) => a.labels.alertname === 'NixosDesyncLagging');
      return l.length > 0 ? l : undefined;
    });
    expect(lagging).toHaveLength(1);
    // `for: 15m`: pending for the length of this test.
    expect(['pending', 'firing']).toContain(lagging[0].state);
    expect(lagging[0].labels).toMatchObject({ desync: 'lagging', budget: 'rebuilds', severity: 'warning', job: JOB, instance });
    expect(Number(lagging[0].value)).toBe(0.5);
  }, 20_000);

  it('every dashboard query parses and returns data', async () => {
    // increase(…[1m]) needs two samples in its window: wait for a few scrapes first.
    await waitUntil('three scrapes', 15_000, async () => {
      const r = await query(`count_over_time(nixos_desync_build_info{job="${JOB}"}[1m]) >= 3`);
      return r.data.result.length === 1 ? true : undefined;
    });
    const files = readdirSync(DASHBOARDS).filter((f) => f.endsWith('.json')).sort();
    expect(files.length).toBeGreaterThan(0);
    const problems: string[] = [];
    let ran = 0;
    for (const file of files) {
      const d: Json = JSON.parse(readFileSync(path.join(DASHBOARDS, file), 'utf8'));
      for (const q of queries(d)) {
        // $__rate_interval as Grafana computes it for a data source with its default 15 s interval.
        const expr = substituteGrafanaVariables(q.expr, { job: JOB, instance, rateInterval: '1m' });
        const where = `${file} ${q.where}: ${expr}`;
        const r = await query(expr).catch((err: Error) => ({ status: `error: ${err.message}`, data: { resultType: '', result: [] } }));
        ran++;
        if (r.status !== 'success') { problems.push(`${where}: ${r.status}`); continue; }
        if (r.data.result.length === 0) { problems.push(`${where}: no data`); continue; }
        // `X or vector(0)` always returns data: X itself must too on this fixture, or a
        // broken X would hide behind the 0.
        const inner = /^(.*?)\s+or\s+vector\(0\)\s*$/s.exec(expr)?.[1];
        if (inner === undefined) continue;
        // The one exception: "Exporters down" counts targets with up == 0, and the
        // exporter is up here, so X is legitimately empty (the 0 is the answer).
        if (/^count\(up\{[^}]*\} == 0\)$/.test(inner)) continue;
        const ri = await query(inner);
        if (ri.status !== 'success' || ri.data.result.length === 0) problems.push(`${where}: without "or vector(0)" it returns no data`);
      }
    }
    expect(problems).toEqual([]);
    expect(ran).toBeGreaterThan(40);
  }, 25_000);

  it('resolves the breach (a resolved webhook) once the desync passes its gate', async () => {
    const id = setId(new Date(), 'c3d4');
    await writeCommitted(stateDir, fixedState(state, Date.now(), id));
    await waitUntil('Prometheus to see the fixed state', 15_000, async () => {
      const r = await query(`nixos_desync_breached{job="${JOB}",desync="breached"} == 0`);
      return r.data.result.length === 1 ? true : undefined;
    });
    const [n] = await waitUntil('a resolved NixosDesyncMaxAgeBreached webhook', 20_000,
      async () => { const f = notificationsFor('/pager', 'resolved'); return f.length > 0 ? f : undefined; },
      () => JSON.stringify(receiver!.received));
    expect(n!.status).toBe('resolved');
    const a = n!.alerts.find((x) => x.labels.alertname === 'NixosDesyncMaxAgeBreached')!;
    expect(a.labels).toMatchObject({ desync: 'breached', instance });
    // Prometheus no longer has it, and "lagging" still lags.
    const active = await activeAlerts();
    expect(active.filter((x) => x.labels.alertname === 'NixosDesyncMaxAgeBreached')).toEqual([]);
    expect(active.filter((x) => x.labels.alertname === 'NixosDesyncLagging').map((x) => x.labels.desync)).toEqual(['lagging']);
  }, 25_000);
});
