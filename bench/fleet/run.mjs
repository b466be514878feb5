#!/usr/bin/env node
// Long file: one benchmark script, its two modes (blocks, head) side by side with their shared helpers.
// Fleet simulation (a benchmark, not a test): how one real Prometheus copes with a fleet of
// nixos-desync exporters. For each fleet size H (× D desyncs): synthetic OpenMetrics
// (bench/fleet/generate.mjs) → `promtool tsdb create-blocks-from openmetrics` → Prometheus
// 2.42 started on those blocks with the shipped rule files (alerts/*.rules.yml) → measures
// series, Prometheus memory, and the latency of every fleet dashboard query
// (dashboards/nixos-desync-fleet.json, $job/$instance = all) and of every rule.
//   node bench/fleet/run.mjs --hosts 1000,3000 [--desyncs 20] [--hours 3] [--step 180] [--json F]
//                            [--head 1000 --head-seconds 120]   (also a live-scrape head measurement)
//                            [--scrape-interval 60 --eval-interval 60 --min-block-duration 10m]
//                            (head mode: a fleet's intervals; a head compaction within the run)
// Runs under `nice`, one size at a time, and deletes its data (GBs) unless --keep.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const { values: a } = parseArgs({
  options: {
    hosts: { type: 'string', default: '1000' },
    desyncs: { type: 'string', default: '20' },
    hours: { type: 'string', default: '3' },
    step: { type: 'string', default: '180' },
    reps: { type: 'string', default: '5' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    head: { type: 'string', default: '' }, // fleet sizes for head mode (a live scrape), e.g. 1000
    'head-seconds': { type: 'string', default: '120' },
    'scrape-interval': { type: 'string', default: '15' }, // head mode, seconds
    'eval-interval': { type: 'string', default: '' }, // head mode, seconds (default: the scrape interval)
    // Prometheus' hidden testing flag: the head is compacted once it spans 1.5× this (2h in
    // production, i.e. after 3 h) — so a run of tens of minutes sees a compaction and the after.
    'min-block-duration': { type: 'string', default: '' },
    blocks: { type: 'boolean', default: true },
    budget: { type: 'boolean', default: false }, // hosts filled up to the series budget (generate.mjs --budget)
    gomemlimit: { type: 'string', default: '' }, // e.g. 16GiB: GOMEMLIMIT for Prometheus
  },
});
const RULE_FILES = ['alerts/nixos-desync.rules.yml', 'alerts/nixos-desync-fleet.rules.yml', 'alerts/nixos-desync-rollout.rules.yml'].map((f) => join(ROOT, f));
const REPS = Number(a.reps);
const log = (m) => process.stderr.write(`fleet: ${m}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); }); });
const median = (xs) => { const s = [...xs].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const rssOf = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const hwmOf = (pid) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) * 1024;
const duBytes = (dir) => readdirSync(dir, { recursive: true }).reduce((n, f) => { const st = statSync(join(dir, f)); return st.isFile() ? n + st.size : n; }, 0);

/** Every query of the fleet dashboard, with its panel and whether it is a range query. */
function dashboardQueries() {
  const dash = JSON.parse(readFileSync(join(ROOT, 'dashboards/nixos-desync-fleet.json'), 'utf8'));
  const out = [];
  const walk = (panels) => {
    for (const p of panels ?? []) {
      walk(p.panels);
      for (const t of p.targets ?? []) {
        if (!t.expr) continue;
        const expr = t.expr.replaceAll('$job', '.*').replaceAll('$instance', '.*').replaceAll('$__rate_interval', '4m');
        out.push({ panel: p.title, expr, range: t.range === true || (p.type === 'timeseries' && t.instant !== true) });
      }
    }
  };
  walk(dash.panels);
  return out;
}

const ruleExprs = () => RULE_FILES.flatMap((f) => parseYaml(readFileSync(f, 'utf8')).groups.flatMap((g) => g.rules.map((r) => ({ name: r.record ?? r.alert, expr: r.expr }))));

async function query(base, expr, range, rangeSeconds = 3 * 3600) {
  const now = Date.now() / 1000;
  const url = range
    ? `${base}/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${now - rangeSeconds}&end=${now}&step=${rangeSeconds > 3600 ? 60 : 15}`
    : `${base}/api/v1/query?query=${encodeURIComponent(expr)}&time=${now}`;
  const t0 = performance.now();
  const res = await fetch(url);
  const body = await res.json();
  const ms = performance.now() - t0;
  if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
  const n = body.data.result.length;
  return { ms, n };
}

async function runSize(H, D) {
  const dir = mkdtempSync(join(tmpdir(), `nixos-desync-fleet-${H}x${D}-`));
  const r = { hosts: H, desyncs: D, hours: Number(a.hours), stepSeconds: Number(a.step) };
  try {
    log(`${H} hosts × ${D} desyncs: generating`);
    let t0 = performance.now();
    const g = spawnSync('nice', ['-n', '10', process.execPath, join(ROOT, 'bench/fleet/generate.mjs'),
      '--hosts', String(H), '--desyncs', String(D), '--hours', a.hours, '--step', a.step, '--end', String(Math.floor(Date.now() / 1000) - 60),
      '--out', join(dir, 'fleet.om')], { encoding: 'utf8' });
    if (g.status !== 0) throw new Error(`generate.mjs failed: ${g.stderr}`);
    const gen = JSON.parse(g.stderr.trim().split('\n').pop());
    Object.assign(r, { series: gen.series, seriesPerHost: gen.seriesPerHost, samples: gen.samples, generateSeconds: (performance.now() - t0) / 1000, openMetricsBytes: statSync(join(dir, 'fleet.om')).size });
    log(`  ${gen.series} series, ${gen.samples} samples, ${(r.openMetricsBytes / 1e9).toFixed(2)} GB in ${r.generateSeconds.toFixed(0)} s; creating blocks`);
    t0 = performance.now();
    execFileSync('nice', ['-n', '10', 'promtool', 'tsdb', 'create-blocks-from', 'openmetrics', join(dir, 'fleet.om'), join(dir, 'data')], { stdio: 'ignore' });
    r.createBlocksSeconds = (performance.now() - t0) / 1000;
    rmSync(join(dir, 'fleet.om'));
    r.tsdbBytes = duBytes(join(dir, 'data'));
    log(`  blocks: ${(r.tsdbBytes / 1e6).toFixed(0)} MB in ${r.createBlocksSeconds.toFixed(0)} s; starting Prometheus`);

    const port = await freePort();
    writeFileSync(join(dir, 'prometheus.yml'), `global:\n  evaluation_interval: 1m\nrule_files:\n${RULE_FILES.map((f) => `  - ${f}\n`).join('')}`);
    const prom = spawn('nice', ['-n', '10', 'prometheus', `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
      '--storage.tsdb.retention.time=3650d', `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
      // The blocks end before Prometheus starts (its head refuses samples older than the
      // newest block, so rule results at "now" need the data to be in the past): a lookback
      // long enough for "now" to still see the last synthetic samples however long setup took.
      '--query.lookback-delta=3h'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    prom.stderr.on('data', (b) => { stderr += b; });
    const base = `http://127.0.0.1:${port}`;
    try {
      t0 = performance.now();
      for (;;) {
        if (prom.exitCode !== null) throw new Error(`prometheus exited: ${stderr.slice(-2000)}`);
        if (await fetch(`${base}/-/ready`).then((x) => x.ok, () => false)) break;
        await sleep(100);
      }
      // prom is `nice`; its child is Prometheus itself (nice execs it: same pid).
      const pid = prom.pid;
      r.readySeconds = (performance.now() - t0) / 1000;
      r.rssReadyBytes = rssOf(pid);
      // Every rule group evaluated at least twice (rules that read other rules see their output).
      for (;;) {
        const groups = (await (await fetch(`${base}/api/v1/rules`)).json()).data.groups;
        const evaluated = groups.every((g) => g.lastEvaluation && !g.lastEvaluation.startsWith('0001'));
        if (evaluated && performance.now() - t0 > 65_000) {
          r.ruleGroups = groups.map((g) => ({ name: g.name, evaluationSeconds: g.evaluationTime, rules: g.rules.map((x) => ({ name: x.name, evaluationSeconds: x.evaluationTime, health: x.health, lastError: x.lastError })) }));
          break;
        }
        await sleep(2000);
      }
      r.rssAfterRulesBytes = rssOf(pid);
      const cnt = await query(base, 'count({__name__=~"nixos_desync_.+|up|process_.+|nodejs_.+"})', false);
      r.countAllSeriesMs = cnt.ms;
      r.seriesCounted = Number((await (await fetch(`${base}/api/v1/query?query=${encodeURIComponent('count({__name__=~"nixos_desync_.+|up|process_.+|nodejs_.+"})')}`)).json()).data.result[0]?.value[1]);
      r.fleetHosts = Number((await (await fetch(`${base}/api/v1/query?query=fleet:nixos_desync_hosts:count`)).json()).data.result[0]?.value[1]);

      log('  timing dashboard queries and rules');
      r.dashboard = [];
      for (const q of dashboardQueries()) {
        const runs = [];
        for (let i = 0; i < REPS; i++) runs.push(await query(base, q.expr, q.range));
        r.dashboard.push({ panel: q.panel, range: q.range, expr: q.expr, medianMs: median(runs.map((x) => x.ms)), maxMs: Math.max(...runs.map((x) => x.ms)), resultSeries: runs[0].n });
      }
      r.rules = [];
      for (const q of ruleExprs()) {
        const runs = [];
        for (let i = 0; i < REPS; i++) runs.push(await query(base, q.expr, false));
        r.rules.push({ name: q.name, medianMs: median(runs.map((x) => x.ms)), maxMs: Math.max(...runs.map((x) => x.ms)), resultSeries: runs[0].n });
      }
      r.rssAfterQueriesBytes = rssOf(pid);
      r.rssPeakBytes = hwmOf(pid);
      const metrics = await (await fetch(`${base}/metrics`)).text();
      const m = (n) => Number(new RegExp(`^${n} (\\S+)$`, 'm').exec(metrics)?.[1]);
      r.goHeapInuseBytes = m('go_memstats_heap_inuse_bytes');
      r.headSeries = m('prometheus_tsdb_head_series');
    } finally {
      prom.kill('SIGTERM');
      await new Promise((res) => (prom.exitCode !== null ? res() : prom.once('exit', res)));
    }
  } finally {
    if (!a.keep) rmSync(dir, { recursive: true, force: true });
  }
  return r;
}

/** The hosts' own step-9d query (ring 1 asking about ring 0 and the channel revision), from dist/ when built. */
async function timeRolloutQuery(base) {
  const fleet = await import(join(ROOT, 'dist/src/rollout/fleet.js')).catch(() => null);
  if (!fleet) { log('  (dist/ not built: the rollout query is not timed; npm run build)'); return undefined; }
  const expr = fleet.rolloutQuery({ ring: 1, soak: '6h' }, 'c0ffee0000000000000000000000000000000042');
  const runs = [];
  for (let i = 0; i < REPS; i++) runs.push(await query(base, expr, false));
  return { expr, medianMs: median(runs.map((x) => x.ms)), resultSeries: runs[0].n };
}

/**
 * Head mode: the same fleet as one live scrape (the values at "now", job/instance kept with
 * honor_labels) into an empty Prometheus, scraped every 15 s for `--head-seconds`: what a
 * production Prometheus holds in memory for this fleet (the block mode above measures queries
 * over persisted blocks, whose series are not in the head).
 */
async function runHead(H, D) {
  const dir = mkdtempSync(join(tmpdir(), `nixos-desync-fleet-head-${H}x${D}-`));
  const SI = Number(a['scrape-interval']), EI = Number(a['eval-interval'] || SI);
  const r = { hosts: H, desyncs: D, scrapeIntervalSeconds: SI, evaluationIntervalSeconds: EI, minBlockDuration: a['min-block-duration'] || '2h' };
  const { createServer: createHttpServer } = await import('node:http');
  let server;
  try {
    const g = spawnSync('nice', ['-n', '10', process.execPath, join(ROOT, 'bench/fleet/generate.mjs'),
      '--hosts', String(H), '--desyncs', String(D), '--snapshot', '--out', join(dir, 'snapshot.prom'), ...(a.budget ? ['--budget'] : [])], { encoding: 'utf8' });
    if (g.status !== 0) throw new Error(`generate.mjs failed: ${g.stderr}`);
    r.generated = JSON.parse(g.stderr.trim().split('\n').at(-1));
    // Split by host into PARTS scrape targets (one 400 MB scrape would hit the scrape timeout):
    // each part is a valid exposition of 1/PARTS of the hosts.
    const PARTS = Math.max(1, Math.ceil(H / 500));
    const parts = Array.from({ length: PARTS }, () => []);
    let header = '';
    let total = 0;
    for (const line of readFileSync(join(dir, 'snapshot.prom'), 'utf8').split('\n')) {
      if (line === '') continue;
      total += line.length + 1;
      if (line.startsWith('#')) { header = line; for (const p of parts) p.push(line); continue; }
      const m = /instance="host-(\d+)/.exec(line);
      parts[m ? Number(m[1]) % PARTS : 0].push(line);
    }
    void header;
    const bodies = parts.map((p) => Buffer.from(p.join('\n') + '\n'));
    parts.length = 0;
    r.expositionBytes = total;
    r.scrapeTargets = PARTS;
    server = createHttpServer((req, res) => {
      const i = Number(new URL(req.url, 'http://localhost').searchParams.get('part') ?? 0);
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(bodies[i] ?? '');
    });
    await new Promise((res) => server.listen(0, '127.0.0.1', res));
    const target = `127.0.0.1:${server.address().port}`;
    const port = await freePort();
    writeFileSync(join(dir, 'prometheus.yml'), [
      'global:', `  scrape_interval: ${SI}s`, `  scrape_timeout: ${SI - 1}s`, `  evaluation_interval: ${EI}s`,
      'rule_files:', ...RULE_FILES.map((f) => `  - ${f}`),
      'scrape_configs:', ...Array.from({ length: PARTS }, (_, i) => [`  - job_name: fleet-${i}`, '    honor_labels: true', `    params: { part: ["${i}"] }`, '    static_configs:', `      - targets: ["${target}"]`]).flat(), '',
    ].join('\n'));
    const prom = spawn('nice', ['-n', '10', 'prometheus', `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn',
      ...(a['min-block-duration'] ? [`--storage.tsdb.min-block-duration=${a['min-block-duration']}`, `--storage.tsdb.max-block-duration=${a['min-block-duration']}`] : [])], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...(a.gomemlimit ? { GOMEMLIMIT: a.gomemlimit } : {}) } });
    let stderr = '';
    prom.stderr.on('data', (b) => { stderr += b; });
    const base = `http://127.0.0.1:${port}`;
    try {
      const t0 = performance.now();
      while (!(await fetch(`${base}/-/ready`).then((x) => x.ok, () => false))) {
        if (prom.exitCode !== null) throw new Error(`prometheus exited: ${stderr.slice(-2000)}`);
        await sleep(100);
      }
      const value = async (q) => Number((await (await fetch(`${base}/api/v1/query?query=${encodeURIComponent(q)}`)).json()).data.result[0]?.value[1]);
      const own = async () => { const t = await (await fetch(`${base}/metrics`)).text(); return (n) => Number(new RegExp(`^${n} (\\S+)$`, 'm').exec(t)?.[1]); };
      const groupsNow = async () => (await (await fetch(`${base}/api/v1/rules`)).json()).data.groups.map((gr) => ({ name: gr.name, evaluationSeconds: gr.evaluationTime, lastEvaluation: gr.lastEvaluation }));
      const samples = [];
      // One sample per scrape interval (at most every 30 s): memory, head, compactions, rule groups, scrape durations.
      while (performance.now() - t0 < Number(a['head-seconds']) * 1000) {
        await sleep(Math.min(SI, 30) * 1000);
        const m = await own(); // Prometheus' own metrics (it does not scrape itself here)
        const x = { at: (performance.now() - t0) / 1000, rss: rssOf(prom.pid), goHeapInuse: m('go_memstats_heap_inuse_bytes'), goHeapAlloc: m('go_memstats_heap_alloc_bytes'), goNextGc: m('go_memstats_next_gc_bytes'), headSeries: m('prometheus_tsdb_head_series'),
          headChunks: m('prometheus_tsdb_head_chunks'), compactions: m('prometheus_tsdb_compactions_total'), headTruncations: m('prometheus_tsdb_head_truncations_total'),
          scrapeSeconds: await value('max(scrape_duration_seconds{job=~"fleet-.*"})'), scrapesFailed: await value('count(up{job=~"fleet-.*"} == 0) or vector(0)'),
          ruleGroups: await groupsNow() };
        samples.push(x);
        log(`  ${x.at.toFixed(0)} s: RSS ${(x.rss / 1e9).toFixed(2)} GB, heap ${(x.goHeapInuse / 1e9).toFixed(2)} GB, head ${x.headSeries} series / ${x.headChunks} chunks, compactions ${x.compactions}, scrape ${x.scrapeSeconds?.toFixed(1)} s, rules ${x.ruleGroups.map((g) => g.evaluationSeconds.toFixed(1)).join('/')} s`);
        if (a.json) writeFileSync(`${a.json}.partial`, JSON.stringify(samples) + '\n');
      }
      r.samples = samples;
      r.headSeries = samples.at(-1).headSeries;
      r.rssBytes = samples.at(-1).rss;
      r.rssPeakBytes = hwmOf(prom.pid);
      r.scrapeSeconds = median(samples.map((x) => x.scrapeSeconds).filter(Number.isFinite));
      r.goHeapInuseBytes = samples.at(-1).goHeapInuse;
      // Steady state: the last third of the run (after the head filled, and after a compaction when there was one).
      const late = samples.slice(Math.floor((samples.length * 2) / 3));
      r.steady = { fromSeconds: late[0]?.at, rssMedianBytes: median(late.map((x) => x.rss)), rssMaxBytes: Math.max(...late.map((x) => x.rss)), goHeapInuseMedianBytes: median(late.map((x) => x.goHeapInuse)),
        ruleGroups: late.at(-1)?.ruleGroups.map((g) => ({ name: g.name, evaluationSecondsMedian: median(late.map((x) => x.ruleGroups.find((y) => y.name === g.name)?.evaluationSeconds ?? NaN)) })) };
      const ownText = await (await fetch(`${base}/metrics`)).text();
      r.ruleIterationsMissed = Object.fromEntries([...ownText.matchAll(/^prometheus_rule_group_iterations_missed_total\{rule_group="[^"]*;([^"]+)"\} (\S+)$/gm)].map((x) => [x[1], Number(x[2])]));
      r.fleetHosts = await value('fleet:nixos_desync_hosts:count');
      r.ruleGroups = await groupsNow();
      r.rolloutQuery = await timeRolloutQuery(base);
      r.dashboard = [];
      for (const q of dashboardQueries()) {
        const runs = [];
        for (let i = 0; i < REPS; i++) runs.push(await query(base, q.expr, q.range, 600));
        r.dashboard.push({ panel: q.panel, range: q.range, medianMs: median(runs.map((x) => x.ms)), resultSeries: runs[0].n });
      }
    } finally {
      prom.kill('SIGTERM');
      await new Promise((res) => (prom.exitCode !== null ? res() : prom.once('exit', res)));
    }
  } finally {
    server?.close();
    if (!a.keep) rmSync(dir, { recursive: true, force: true });
  }
  return r;
}

const results = { at: new Date().toISOString(), cores: cpus().length, cpu: cpus()[0]?.model, loadBefore: loadavg(), sizes: [] };
for (const H of a.hosts.split(',').filter(Boolean).map(Number)) {
  const r = await runSize(H, Number(a.desyncs));
  results.sizes.push(r);
  const mb = (b) => (b / 1e6).toFixed(0);
  log(`  ${H}×${a.desyncs}: ${r.seriesCounted} series; RSS ready ${mb(r.rssReadyBytes)} MB, after rules ${mb(r.rssAfterRulesBytes)} MB, after queries ${mb(r.rssAfterQueriesBytes)} MB, peak ${mb(r.rssPeakBytes)} MB`);
  const worst = [...r.dashboard].sort((x, y) => y.medianMs - x.medianMs).slice(0, 3);
  log(`  slowest dashboard queries (median ms): ${worst.map((w) => `${w.medianMs.toFixed(0)} ${w.panel}${w.range ? ' (range)' : ''}`).join(' · ')}`);
  log(`  rule groups: ${r.ruleGroups.map((g) => `${g.name} ${(g.evaluationSeconds * 1000).toFixed(0)} ms`).join(' · ')}`);
}
results.head = [];
for (const H of a.head.split(',').filter(Boolean).map(Number)) {
  log(`head: ${H} hosts × ${a.desyncs} desyncs, live scrape every ${a['scrape-interval']} s for ${a['head-seconds']} s`);
  const r = await runHead(H, Number(a.desyncs));
  results.head.push(r);
  log(`  steady (from ${r.steady.fromSeconds?.toFixed(0)} s): RSS median ${(r.steady.rssMedianBytes / 1e9).toFixed(2)} GB, max ${(r.steady.rssMaxBytes / 1e9).toFixed(2)} GB, heap ${(r.steady.goHeapInuseMedianBytes / 1e9).toFixed(2)} GB; missed rule iterations ${JSON.stringify(r.ruleIterationsMissed)}`);
  log(`  head series ${r.headSeries}; RSS ${(r.rssBytes / 1e6).toFixed(0)} MB (peak ${(r.rssPeakBytes / 1e6).toFixed(0)} MB); scrape ${r.scrapeSeconds?.toFixed(2)} s; rule groups ${r.ruleGroups.map((g) => `${g.name} ${(g.evaluationSeconds * 1000).toFixed(0)} ms`).join(' · ')}`);
}
results.loadAfter = loadavg();
if (a.json) writeFileSync(a.json, JSON.stringify(results, null, 1) + '\n');
else process.stdout.write(JSON.stringify(results, null, 1) + '\n');
