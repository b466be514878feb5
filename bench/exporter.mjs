#!/usr/bin/env node
// Benchmark: `nixos-desync serve` /metrics under load, side by side with node_exporter 1.5
// (textfile collector only, serving the same exposition) and a bare node:http floor.
//
//   node bench/exporter.mjs [--duration 10] [--rounds 2] [--desyncs 100] [--generations 5000]
//                           [--changes 200] [--json FILE]
//
// Needs `wrk` and `prometheus-node-exporter` (bench/run.sh installs them) and a built dist/.
// Fixture: <tmp>/state (state.json with N desyncs, a committed pin set, history), <tmp>/profiles
// with G `system-N-link` generations, <tmp>/run (current/booted system). The exporter is the
// real CLI (`node dist/src/cli/main.js serve`) in its own process; wrk -t2 -c64 hits each
// target in turn, rounds interleaved (ours, node_exporter, floor, then again in another order).
// CPU per scrape = Δ(utime+stime of the server process, /proc/PID/stat) / requests served.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile, lutimes } from 'node:fs/promises';
import { chmodSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const D = (p) => import(join(ROOT, 'dist/src', p));
const { createStateStore } = await D('state/store.js');
const { parseConfig } = await D('config/load.js');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const FLOOR = join(ROOT, 'bench/floor-server.mjs');
const UNCAPPED = join(ROOT, 'bench/serve-uncapped.mjs');
// The exporter runs as a user starts it: the bin itself, so the node flags of its shebang
// (`#!/usr/bin/env -S node …`) apply; the uncapped helper gets the same flags.
// --node-defaults runs `node dist/src/cli/main.js` instead (Node's defaults, no shebang flags).
const NODE_DEFAULTS = process.argv.includes('--node-defaults');
const SHEBANG = readFileSync(CLI, 'utf8').split('\n', 1)[0];
const BIN_FLAGS = NODE_DEFAULTS ? [] : (/^#!\S*env -S node (.*)$/.exec(SHEBANG)?.[1].trim().split(/\s+/) ?? []);
chmodSync(CLI, 0o755); // tsc does not set the executable bit that npm gives a bin
const ourCommand = (argv) => (NODE_DEFAULTS ? [process.execPath, [CLI, ...argv]] : [CLI, argv]);
const PROBE = join(ROOT, 'bench/memprobe.cjs');

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const DURATION = Number(args.duration ?? 10);
const ROUNDS = Number(args.rounds ?? 2);
const NDESYNCS = Number(args.desyncs ?? 100);
const NGENS = Number(args.generations ?? 5000);
const NCHANGES = Number(args.changes ?? 200);
const NODE_EXPORTER = args['node-exporter'] ?? 'prometheus-node-exporter';
const log = (s) => process.stderr.write(`exporter: ${s}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const PAGE = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim());

// ---------------------------------------------------------------- fixture
const HEX = (i, len) => (i.toString(16).padStart(8, '0').repeat(8)).slice(0, len);
function fixtureState(n, runsSuccess = 100) {
  const at = (d) => new Date(Date.UTC(2026, 0, 10) - d * 86_400_000).toISOString();
  const pins = {};
  const desyncs = {};
  for (let i = 0; i < n; i++) {
    const name = `desync-${String(i).padStart(3, '0')}`;
    const lag = i % 7;
    const path = `/nix/store/${HEX(i, 32).replace(/[eotu]/g, 'a')}-nixpkgs`;
    pins[name] = { path, storePath: path, revision: HEX(i * 7919, 40), desyncAge: lag, pinnedAt: at(lag) };
    desyncs[name] = {
      attempts: { passed: 50 + i, failed: lag },
      consecutiveFailures: lag,
      lastAttempt: { at: at(0), result: lag === 0 ? 'passed' : 'failed', ...(lag ? { error: `pkg${i} failed to build` } : {}) },
      lastSuccessAt: at(lag),
      behindSince: lag ? at(lag - 1) : null,
      breached: lag >= 6,
      breachReason: lag >= 6 ? `lag ${lag} ≥ maxLagRebuilds 5` : null,
    };
  }
  return {
    version: 1,
    committed: { setId: '20260110T040000Z-a1b2c3', at: at(0), pins },
    desyncs,
    runs: {
      total: { success: runsSuccess, failure: 7, breach: 3 },
      last: { id: '20260110T040000Z-a1b2c3', at: at(0), finishedAt: at(0), result: 'success', durationSeconds: 750, stages: { fetch: 12.5, candidate: 2, gate: 600, system_build: 120, commit: 0.5, activate: 15 }, error: null },
      lastSuccessAt: at(0),
    },
  };
}

async function buildFixture(dir) {
  const stateDir = join(dir, 'state');
  const profilesDir = join(dir, 'profiles');
  const runDir = join(dir, 'run');
  const storeDir = join(dir, 'store');
  await mkdir(profilesDir, { recursive: true });
  await mkdir(runDir, { recursive: true });
  const store = createStateStore(stateDir);
  await store.ensureLayout();
  const state = fixtureState(NDESYNCS);
  const setId = state.committed.setId;
  await store.createSet(setId);
  await store.writeSetPins(setId, state.committed.pins);
  await store.pointPinsAt(setId);
  await store.writeState(state);
  for (let k = 0; k < 20; k++) {
    const r = state.runs.last;
    await store.appendHistory({ ...r, id: `20260110T04000${k % 10}Z-a1b2c${k % 10}`, exitCode: 0, candidate: { path: '/nix/store/x-nixpkgs', revision: HEX(k, 40) }, desyncs: [], evaluations: 1 });
  }
  // G generations: system-N-link → <store>/<hash>-nixos-system-N, with kernel/initrd/modules.
  const t0 = Date.UTC(2025, 0, 1) / 1000;
  for (let g = 1; g <= NGENS; g++) {
    const sys = join(storeDir, `${HEX(g, 32)}-nixos-system-${g}`);
    if (g === NGENS || g === NGENS - 1) {
      await mkdir(sys, { recursive: true });
      for (const part of ['kernel', 'initrd', 'kernel-modules']) await symlink(join(storeDir, `linux-${g}`), join(sys, part));
      await mkdir(join(storeDir, `linux-${g}`), { recursive: true });
    }
    const link = join(profilesDir, `system-${g}-link`);
    await symlink(sys, link);
    await lutimes(link, t0 + g * 3600, t0 + g * 3600);
  }
  await symlink(`system-${NGENS}-link`, join(profilesDir, 'system'));
  await symlink(join(storeDir, `${HEX(NGENS - 1, 32)}-nixos-system-${NGENS - 1}`), join(runDir, 'current-system'));
  await symlink(join(storeDir, `${HEX(NGENS - 1, 32)}-nixos-system-${NGENS - 1}`), join(runDir, 'booted-system'));
  const desyncCfg = {};
  for (const name of Object.keys(state.committed.pins)) desyncCfg[name] = { requireBuilds: ['hello'], maxLagRebuilds: 5, maxBehind: '14d' };
  const configPath = join(dir, 'config.json');
  const config = { desyncs: desyncCfg, stateDir, profilesDir, runDir, exporter: { listenAddress: '127.0.0.1:9793' } };
  parseConfig(config); // fail early on an invalid fixture
  await writeFile(configPath, JSON.stringify(config, null, 2));
  return { stateDir, profilesDir, runDir, configPath, store, state };
}

// ---------------------------------------------------------------- processes
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
const children = new Set();
process.on('exit', () => {
  for (const c of children) try { c.kill('SIGKILL'); } catch { /* gone */ }
});
function start(cmd, argv, opts = {}) {
  const c = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(c);
  c.stderrText = '';
  c.stderr.on('data', (b) => { c.stderrText = (c.stderrText + b).slice(-4000); });
  c.stdout.on('data', () => undefined);
  c.on('exit', () => children.delete(c));
  return c;
}
async function stop(c) {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const done = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}
function procStat(pid) {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  // fields after ")" start at index 3 (state); utime = 14, stime = 15, rss = 24 (1-based)
  return { cpuSec: (Number(f[11]) + Number(f[12])) / TICK, rssMB: (Number(f[21]) * PAGE) / 1048576 };
}
async function get(url) {
  const r = await fetch(url);
  return { status: r.status, body: await r.text(), type: r.headers.get('content-type') };
}
async function waitFor(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await fn()) return;
    } catch { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

// ---------------------------------------------------------------- wrk
function toMs(v) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v);
  if (!m) return NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60000 }[m[2]];
}
async function wrk(url, pid) {
  const before = procStat(pid);
  let peakRss = before.rssMB;
  const sampler = setInterval(() => {
    try { peakRss = Math.max(peakRss, procStat(pid).rssMB); } catch { /* gone */ }
  }, 100);
  const out = await new Promise((resolve, reject) => {
    const c = spawn('wrk', ['-t2', '-c64', `-d${DURATION}s`, '--latency', '--timeout', '10s', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    c.stdout.on('data', (b) => { text += b; });
    c.stderr.on('data', (b) => { text += b; });
    c.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`))));
  });
  clearInterval(sampler);
  const after = procStat(pid);
  const pct = (p) => toMs((new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm').exec(out) ?? [])[1] ?? '');
  const requests = Number((/(\d+) requests in/.exec(out) ?? [])[1]);
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const sockErr = /Socket errors: (.*)/.exec(out);
  return {
    rpsAll: Number((/Requests\/sec:\s+([\d.]+)/.exec(out) ?? [])[1]),
    rps: Number((/Requests\/sec:\s+([\d.]+)/.exec(out) ?? [])[1]) * (requests - (errors ? Number(errors[1]) : 0)) / requests, // 2xx only
    p50: pct(50),
    p99: pct(99),
    requests,
    non2xx: errors ? Number(errors[1]) : 0,
    socketErrors: sockErr ? sockErr[1] : null,
    cpuMsPerScrape: ((after.cpuSec - before.cpuSec) * 1000) / (requests - (errors ? Number(errors[1]) : 0)),
    cpuUtil: (after.cpuSec - before.cpuSec) / DURATION,
    peakRssMB: peakRss,
  };
}

// ---------------------------------------------------------------- main
const tmp = await mkdtemp(join(tmpdir(), 'nixos-desync-bench-exporter-'));
const results = { started: new Date().toISOString(), nproc: cpus().length, loadavgStart: loadavg(), desyncs: NDESYNCS, generations: NGENS, durationSeconds: DURATION };
const GEN_LINE = `nixos_desync_system_generations ${NGENS}\n`;
try {
  log(`building the fixture: ${NDESYNCS} desyncs, ${NGENS} generations`);
  const fx = await buildFixture(tmp);
  if (args['fixture-only']) {
    console.log(fx.configPath);
    await new Promise(() => undefined);
  }

  // Start-up time to the first correct scrape (median of 3 cold starts of the CLI).
  const startOurs = async () => {
    const port = await freePort();
    const t = process.hrtime.bigint();
    const c = start(...ourCommand(['serve', '--config', fx.configPath, '--web.listen-address', `127.0.0.1:${port}`]));
    const url = `http://127.0.0.1:${port}/metrics`;
    await waitFor(async () => (await get(url)).body.includes(GEN_LINE) , 15_000, 'the first correct scrape');
    return { c, url, startupMs: Number(process.hrtime.bigint() - t) / 1e6 };
  };
  const startups = [];
  for (let k = 0; k < 3; k++) {
    const s = await startOurs();
    startups.push(s.startupMs);
    await stop(s.c);
  }
  results.startupMs = [...startups].sort((a, b) => a - b)[1];
  log(`start-up to first correct scrape: ${startups.map((x) => x.toFixed(0)).join(', ')} ms`);

  // Memory of the plain CLI (`nixos-desync serve`, no flags, in-flight cap as shipped): idle
  // after its first correct scrape, peak under the 64-connection load, idle 2 s after it.
  // Breakdown from /proc/PID/smaps_rollup (anonymous = heap, stacks, malloc; file-backed =
  // the node binary's and libraries' pages) and, on a second instance with bench/memprobe.cjs
  // preloaded, from V8 (heap spaces, code, external buffers).
  const smaps = (pid) => {
    const t = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (k) => Number((new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(t) ?? [])[1] ?? NaN) / 1024;
    return { rssMB: kb('Rss'), anonMB: kb('Anonymous'), fileMB: kb('Rss') - kb('Anonymous') };
  };
  const plainRun = async (env) => {
    const port = await freePort();
    const c = start(...ourCommand(['serve', '--config', fx.configPath, '--web.listen-address', `127.0.0.1:${port}`]), env ? { env: { ...process.env, ...env } } : {});
    const url = `http://127.0.0.1:${port}/metrics`;
    await waitFor(async () => (await get(url)).body.includes(GEN_LINE), 15_000, 'the plain exporter');
    await sleep(1000);
    return { c, url };
  };
  const probeOut = join(tmp, 'probe.json');
  const probe = async (pid) => {
    await rm(probeOut, { force: true });
    process.kill(pid, 'SIGUSR2');
    await waitFor(async () => JSON.parse(readFileSync(probeOut, 'utf8')), 5000, 'the memory probe');
    return JSON.parse(readFileSync(probeOut, 'utf8'));
  };
  {
    const plain = await plainRun();
    results.plain = { idle: smaps(plain.c.pid) };
    const w = await wrk(plain.url, plain.c.pid);
    await sleep(2000);
    results.plain.load = { rps: w.rps, rpsAll: w.rpsAll, non2xx: w.non2xx, p99: w.p99, peakRssMB: w.peakRssMB };
    results.plain.afterLoad = smaps(plain.c.pid);
    await stop(plain.c);
    log(`plain serve: RSS idle ${results.plain.idle.rssMB.toFixed(1)} MB (anon ${results.plain.idle.anonMB.toFixed(1)}, file ${results.plain.idle.fileMB.toFixed(1)}), peak under load ${w.peakRssMB.toFixed(1)} MB, after ${results.plain.afterLoad.rssMB.toFixed(1)} MB (${w.non2xx} of ${w.requests} answered 503 by the cap)`);
    const probed = await plainRun({ NODE_OPTIONS: `--require ${PROBE}`, MEMPROBE_OUT: probeOut });
    results.plain.v8Idle = await probe(probed.c.pid);
    await wrk(probed.url, probed.c.pid);
    await sleep(2000);
    results.plain.v8AfterLoad = await probe(probed.c.pid);
    await stop(probed.c);
    log(`plain serve V8 idle: ${JSON.stringify(results.plain.v8Idle)}`);
    log(`plain serve V8 after load: ${JSON.stringify(results.plain.v8AfterLoad)}`);
  }

  // Under load: the same serve path with the in-flight cap lifted (see serve-uncapped.mjs).
  const ours = await (async () => {
    const port = await freePort();
    const c = start(process.execPath, [...BIN_FLAGS, UNCAPPED, fx.configPath, `127.0.0.1:${port}`]);
    const url = `http://127.0.0.1:${port}/metrics`;
    await waitFor(async () => (await get(url)).body.includes(GEN_LINE), 15_000, 'the uncapped exporter');
    return { c, url };
  })();
  const body = (await get(ours.url)).body;
  results.bodyBytes = Buffer.byteLength(body);
  results.bodyLines = body.split('\n').length;
  try {
    execFileSync('promtool', ['check', 'metrics'], { input: body, stdio: ['pipe', 'ignore', 'pipe'] });
    results.promtool = 'ok';
  } catch (e) {
    results.promtool = `exit ${e.status}`;
  }
  await sleep(1000);
  results.oursIdleRssMB = procStat(ours.c.pid).rssMB;

  // The same exposition for the two peers. node_exporter exports its own process_* metrics,
  // so prom-client's process_* families are left out of its textfile (duplicates are an error).
  const bodyFile = join(tmp, 'body.prom');
  await writeFile(bodyFile, body);
  const textDir = join(tmp, 'textfile');
  await mkdir(textDir);
  const drop = new Set(body.split('\n').filter((l) => l.startsWith('# TYPE process_')).map((l) => l.split(' ')[2]));
  const neBody = body.split('\n').filter((l) => {
    const name = l.startsWith('#') ? l.split(' ')[2] : l.split(/[{ ]/)[0];
    return !drop.has(name);
  }).join('\n');
  await writeFile(join(textDir, 'x.prom'), neBody);
  const nePort = await freePort();
  const ne = start(NODE_EXPORTER, ['--web.max-requests=0', '--collector.disable-defaults', '--collector.textfile', `--collector.textfile.directory=${textDir}`, `--web.listen-address=127.0.0.1:${nePort}`]);
  const neUrl = `http://127.0.0.1:${nePort}/metrics`;
  await waitFor(async () => (await get(neUrl)).body.includes(GEN_LINE), 10_000, 'node_exporter');
  const neCheck = (await get(neUrl)).body;
  if (/^node_textfile_scrape_error 1$/m.test(neCheck)) throw new Error(`node_exporter reports a textfile scrape error: ${ne.stderrText}`);
  results.nodeExporterBodyBytes = Buffer.byteLength(neCheck);
  const flPort = await freePort();
  const fl = start(process.execPath, [FLOOR, bodyFile, String(flPort)]);
  const flUrl = `http://127.0.0.1:${flPort}/metrics`;
  await waitFor(async () => (await get(flUrl)).body === body, 10_000, 'the floor server');
  await sleep(500);
  results.nodeExporterIdleRssMB = procStat(ne.pid).rssMB;
  results.floorIdleRssMB = procStat(fl.pid).rssMB;

  const targets = { ours: [ours.url, ours.c.pid], node_exporter: [neUrl, ne.pid], floor: [flUrl, fl.pid] };
  const runs = { ours: [], node_exporter: [], floor: [] };
  const orders = [['ours', 'node_exporter', 'floor'], ['floor', 'node_exporter', 'ours']];
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of orders[r % 2]) {
      const [url, pid] = targets[name];
      const load1 = loadavg()[0];
      const w = await wrk(url, pid);
      w.load1 = load1;
      runs[name].push(w);
      log(`round ${r + 1}/${ROUNDS} ${name}: ${w.rps.toFixed(0)} req/s, p50 ${w.p50.toFixed(2)} ms, p99 ${w.p99.toFixed(2)} ms, CPU ${w.cpuMsPerScrape.toFixed(3)} ms/scrape, peak RSS ${w.peakRssMB.toFixed(0)} MB, load ${load1.toFixed(2)}${w.non2xx ? `, ${w.non2xx} non-2xx` : ''}${w.socketErrors ? `, socket errors ${w.socketErrors}` : ''}`);
      await sleep(1000);
    }
  }
  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  const summary = {};
  for (const [name, ws] of Object.entries(runs)) {
    summary[name] = {
      rps: med(ws.map((w) => w.rps)),
      p50: med(ws.map((w) => w.p50)),
      p99: med(ws.map((w) => w.p99)),
      cpuMsPerScrape: med(ws.map((w) => w.cpuMsPerScrape)),
      peakRssMB: Math.max(...ws.map((w) => w.peakRssMB)),
      errors: ws.reduce((s, w) => s + w.non2xx, 0),
    };
  }
  results.load = { runs, summary };
  // Ratios per round (each round measures all three back to back), then their median.
  results.ratios = {
    p99OursOverNodeExporter: med(runs.ours.map((w, i) => w.p99 / runs.node_exporter[i].p99)),
    rpsOursOverFloor: med(runs.ours.map((w, i) => w.rps / runs.floor[i].rps)),
    rpsOursOverNodeExporter: med(runs.ours.map((w, i) => w.rps / runs.node_exporter[i].rps)),
  };
  await stop(ne);
  await stop(fl);
  await sleep(2000);
  results.oursIdleRssAfterLoadMB = procStat(ours.c.pid).rssMB;

  // Watch latency: state.json rewritten atomically (as the loop does); poll /metrics until it
  // shows the new runs_total. Changes are spaced 20–70 ms apart (no two in one debounce).
  const lat = [];
  for (let k = 1; k <= NCHANGES; k++) {
    const want = `nixos_desync_runs_total{result="success"} ${1000 + k}\n`;
    await fx.store.writeState(fixtureState(NDESYNCS, 1000 + k));
    const t = process.hrtime.bigint();
    await waitFor(async () => (await get(ours.url)).body.includes(want), 10_000, `change ${k} in /metrics`);
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
    await sleep(20 + Math.floor(Math.random() * 50));
  }
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)];
  results.watch = { changes: NCHANGES, p50Ms: q(50), p99Ms: q(99), maxMs: lat[lat.length - 1] };
  log(`watch latency over ${NCHANGES} changes: p50 ${q(50).toFixed(0)} ms, p99 ${q(99).toFixed(0)} ms, max ${lat[lat.length - 1].toFixed(0)} ms`);
  await stop(ours.c);
} finally {
  results.loadavgEnd = loadavg();
  for (const c of children) await stop(c).catch(() => undefined);
  await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
}

if (args.json) {
  await mkdir(dirname(args.json), { recursive: true });
  await writeFile(args.json, JSON.stringify(results, null, 2) + '\n');
}
const s = results.load.summary;
const pad = (x, w) => String(x).padStart(w);
console.log(`\nExporter: ${NDESYNCS} desyncs, ${NGENS} generations, /metrics ${results.bodyBytes} bytes (${results.bodyLines} lines, promtool ${results.promtool}); wrk -t2 -c64 -d${DURATION}s, median of ${ROUNDS} interleaved round(s); load ${results.loadavgStart[0].toFixed(2)} → ${results.loadavgEnd[0].toFixed(2)}`);
console.log(`${pad('target', 14)} | ${pad('req/s', 8)} ${pad('p50 ms', 8)} ${pad('p99 ms', 8)} | ${pad('CPU ms/scrape', 13)} ${pad('RSS idle MB', 11)} ${pad('RSS load MB', 11)}`);
const idle = { ours: results.oursIdleRssMB, node_exporter: results.nodeExporterIdleRssMB, floor: results.floorIdleRssMB };
for (const n of ['ours', 'node_exporter', 'floor']) {
  console.log(`${pad(n, 14)} | ${pad(s[n].rps.toFixed(0), 8)} ${pad(s[n].p50.toFixed(2), 8)} ${pad(s[n].p99.toFixed(2), 8)} | ${pad(s[n].cpuMsPerScrape.toFixed(3), 13)} ${pad(idle[n].toFixed(0), 11)} ${pad(s[n].peakRssMB.toFixed(0), 11)}`);
}
const pl = results.plain;
console.log(`plain \`nixos-desync serve\` (${NODE_DEFAULTS ? 'node defaults' : `shebang flags: ${BIN_FLAGS.join(' ') || 'none'}`}): RSS idle ${pl.idle.rssMB.toFixed(1)} MB (target ≤ 70; anon ${pl.idle.anonMB.toFixed(1)}, file-backed ${pl.idle.fileMB.toFixed(1)}; V8 heap used ${pl.v8Idle.heapUsedMB}/${pl.v8Idle.heapTotalMB} MB, code ${pl.v8Idle.spaces.code_space?.sizeMB} MB, external ${pl.v8Idle.externalMB} MB) · after the 64-connection load ${pl.afterLoad.rssMB.toFixed(1)} MB (target ≤ 90; peak ${pl.load.peakRssMB.toFixed(1)}; V8 heap used ${pl.v8AfterLoad.heapUsedMB}/${pl.v8AfterLoad.heapTotalMB} MB)`);
const r = results.ratios;
console.log(`ratios: p99 ours/node_exporter ${r.p99OursOverNodeExporter.toFixed(3)} (target ≤ 0.25) · req/s ours/floor ${r.rpsOursOverFloor.toFixed(3)} (target ≥ 0.5) · req/s ours/node_exporter ${r.rpsOursOverNodeExporter.toFixed(1)}`);
console.log(`start-up to first correct scrape (${NGENS} generations): ${results.startupMs.toFixed(0)} ms (target < 1000) · watch latency p50 ${results.watch.p50Ms.toFixed(0)} ms, p99 ${results.watch.p99Ms.toFixed(0)} ms over ${NCHANGES} changes (target p99 < 250) · RSS idle ${results.oursIdleRssMB.toFixed(0)} MB, under load ${s.ours.peakRssMB.toFixed(0)} MB, idle after ${results.oursIdleRssAfterLoadMB.toFixed(0)} MB (target < 100)`);
