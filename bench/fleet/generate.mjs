#!/usr/bin/env node
// Synthetic OpenMetrics for a fleet: H hosts × D desyncs, the series a real exporter serves
// (same names, labels and types as src/metrics/catalog.ts, the worst case of
// test/metrics/series-budget.test.ts: every desync with both budgets, the loop, the upgrade
// unit, a three-input flake lock, the 6 runtime series, plus `up`), sampled every STEP
// seconds over HOURS hours ending now (or --end), with values shaped like a fleet's:
// daily runs at a random minute, most desyncs in sync, some lagging (lag and behind growing
// at each run), a few breached, a few hosts failing, rolled back, needing a reboot or out of
// date. Deterministic per (seed, host): the same arguments give the same file.
//   node bench/fleet/generate.mjs --hosts 1000 --desyncs 20 --hours 3 --step 180 --out FILE
// Output is grouped by family, then series, then time, as `promtool tsdb
// create-blocks-from openmetrics` requires; it ends with `# EOF`.
import { createWriteStream } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: a } = parseArgs({
  options: {
    hosts: { type: 'string', default: '1000' },
    desyncs: { type: 'string', default: '20' },
    hours: { type: 'string', default: '3' },
    step: { type: 'string', default: '180' },
    jobs: { type: 'string', default: '4' },
    end: { type: 'string' }, // Unix seconds of the last sample (default now)
    out: { type: 'string' },
    // One scrape's worth instead: the values at --end, Prometheus text format, no timestamps
    // (bench/fleet/run.mjs serves it to a live Prometheus to measure its head).
    snapshot: { type: 'boolean', default: false },
    // Fill every host up to the series budget of DESIGN.md (70 + 14·D samples, `up` not counted)
    // with `nixos_desync_bench_budget_fill{slot}`: the fleet as large as the budget allows.
    budget: { type: 'boolean', default: false },
  },
});
const H = Number(a.hosts), D = Number(a.desyncs), STEP = Number(a.step), JOBS = Number(a.jobs);
const END = Math.floor((a.end ? Number(a.end) : Date.now() / 1000) / STEP) * STEP;
const START = END - Number(a.hours) * 3600;
const TIMES = [];
for (let t = START; t <= END; t += STEP) TIMES.push(t);
if (a.snapshot) TIMES.splice(0, TIMES.length - 1);

// A small deterministic hash → [0, 1).
function rnd(...k) {
  let h = 2166136261;
  for (const x of k) {
    const s = String(x);
    for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  }
  h = Math.imul(h ^ (h >>> 15), 2246822507);
  h = Math.imul(h ^ (h >>> 13), 3266489909);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

const DAY = 86400;
const CHANNEL_REV = 'c0ffee0000000000000000000000000000000042';
const OLD_REV = (k) => `c0ffee00000000000000000000000000000${String(Math.floor(rnd('rev', k) * 99999)).padStart(5, '0')}`;

/** One host's state at time t (pure function of host and t). */
function host(h) {
  const offset = Math.floor(rnd('run', h) * DAY); // its daily run starts at this second of the day
  const failing = rnd('failing', h) < 0.03;
  const rolledBack = rnd('rb', h) < 0.01;
  const reboot = rnd('reboot', h) < 0.2;
  const outOfDate = rnd('ood', h) < 0.02;
  const desyncs = [];
  for (let d = 0; d < D; d++) {
    const r = rnd('desync', h, d);
    const kind = r < 0.05 ? 'breached' : r < 0.2 ? 'lagging' : 'insync';
    desyncs.push({ name: `desync-${String(d).padStart(2, '0')}`, kind, lag0: kind === 'breached' ? 14 : kind === 'lagging' ? 1 + Math.floor(rnd('lag', h, d) * 6) : 0 });
  }
  // Rollout: 10 % canaries (ring 0), 30 % ring 1, the rest ring 2; 5 % held, 1 % rejecting two candidates.
  const ring = h % 10 === 0 ? 0 : h % 10 < 4 ? 1 : 2;
  const held = rnd('held', h) < 0.05 ? ['soak', 'no_data', 'unreachable'][Math.floor(rnd('hr', h) * 3)] : null;
  const rejecting = rnd('rej', h) < 0.01;
  return { h, job: `site-${h % JOBS}`, instance: `host-${String(h).padStart(5, '0')}:9793`, offset, failing, rolledBack, reboot, outOfDate, desyncs, ring, held, rejecting };
}

/** Runs of host `x` started at or before t: the last one's start, and how many since START. */
function runsAt(x, t) {
  const last = Math.floor((t - x.offset) / DAY) * DAY + x.offset;
  const inWindow = last >= START ? Math.floor((last - Math.max(START, x.offset)) / DAY) + 1 : 0;
  return { last, inWindow: Math.max(0, inWindow), running: t - last < 600 };
}

const fams = []; // [name, type, help, (x) => Array<[labels, (t) => value]>]
const fam = (name, type, series) => fams.push([name, type, series]);
const g = (name, series) => fam(name, 'gauge', series);
const c = (name, series) => fam(name, 'counter', series);
const one = (fn) => (x) => [['', fn(x)]];
const perDesync = (fn) => (x) => x.desyncs.map((d) => [`desync="${d.name}"`, (t) => fn(x, d, t)]);
const lagAt = (x, d, t) => (d.kind === 'insync' ? 0 : d.lag0 + runsAt(x, t).inWindow);

g('up', one(() => () => 1));
// Per desync (12 series each).
g('nixos_desync_lag_rebuilds', perDesync(lagAt));
g('nixos_desync_max_lag_rebuilds', perDesync((x, d) => (d.kind === 'breached' ? 7 : 14)));
g('nixos_desync_behind_seconds', perDesync((x, d, t) => (d.kind === 'insync' ? 0 : t - (START - d.lag0 * DAY))));
g('nixos_desync_max_behind_seconds', perDesync(() => 14 * DAY));
g('nixos_desync_breached', perDesync((x, d) => (d.kind === 'breached' ? 1 : 0)));
g('nixos_desync_in_sync', perDesync((x, d) => (d.kind === 'insync' ? 1 : 0)));
g('nixos_desync_consecutive_failures', perDesync(lagAt));
c('nixos_desync_attempts_total', (x) => x.desyncs.flatMap((d) => [
  [`desync="${d.name}",result="passed"`, (t) => 100 + (d.kind === 'insync' ? runsAt(x, t).inWindow : 0)],
  [`desync="${d.name}",result="failed"`, (t) => 5 + (d.kind === 'insync' ? 0 : runsAt(x, t).inWindow)],
]));
g('nixos_desync_last_attempt_timestamp_seconds', perDesync((x, d, t) => runsAt(x, t).last + 300));
g('nixos_desync_last_success_timestamp_seconds', perDesync((x, d, t) => (d.kind === 'insync' ? runsAt(x, t).last + 300 : START - d.lag0 * DAY)));
g('nixos_desync_pin_info', (x) => x.desyncs.map((d) => [
  `desync="${d.name}",revision="${d.kind === 'insync' ? CHANNEL_REV : OLD_REV(`${x.h}/${d.name}`)}",path="/nix/store/${'0123456789abcdfghijklmnpqrsvwxyz'.slice(0, 32)}-nixpkgs"`, () => 1]));
// Runs.
c('nixos_desync_runs_total', (x) => ['success', 'failure', 'breach', 'rolled_back', 'held'].map((r) => [`result="${r}"`, (t) => (r === 'success' ? 300 : 4) + (r === (x.failing ? 'failure' : 'success') ? runsAt(x, t).inWindow : 0)]));
g('nixos_desync_last_run_timestamp_seconds', one((x) => (t) => runsAt(x, t).last));
g('nixos_desync_last_run_success', one((x) => () => (x.failing ? 0 : 1)));
g('nixos_desync_last_successful_run_timestamp_seconds', one((x) => (t) => (x.failing ? START - 5 * DAY : runsAt(x, t).last + 700)));
g('nixos_desync_last_run_duration_seconds', one((x) => () => 600 + Math.floor(rnd('dur', x.h) * 600)));
g('nixos_desync_last_run_stage_duration_seconds', (x) => ['fetch', 'candidate', 'rollout', 'gate', 'system_build', 'activate', 'health', 'commit'].map((s) => [`stage="${s}"`, () => Math.floor(rnd('stage', x.h, s) * 300)]));
g('nixos_desync_run_in_progress', one((x) => (t) => (runsAt(x, t).running ? 1 : 0)));
g('nixos_desync_state_corrupt_files', one(() => () => 0));
c('nixos_desync_rollbacks_total', (x) => ['activation', 'health'].map((r) => [`reason="${r}"`, () => (x.rolledBack ? 1 : 0)]));
g('nixos_desync_last_rollback_timestamp_seconds', one((x) => () => (x.rolledBack ? END - 3600 * 9 : 0)));
g('nixos_desync_last_health_check_success', one((x) => () => (x.rolledBack ? 0 : 1)));
// Rollout (issue 21).
g('nixos_desync_rollout_info', (x) => [[`ring="${x.ring}"`, () => 1]]);
g('nixos_desync_rollout_held', (x) => ['soak', 'no_data', 'unreachable'].map((r) => [`reason="${r}"`, () => (x.held === r ? 1 : 0)]));
g('nixos_desync_rollout_held_since_timestamp_seconds', (x) => (x.held ? [['', () => END - Math.floor(rnd('hs', x.h) * 2 * DAY)]] : []));
g('nixos_desync_rollout_healthy_since_timestamp_seconds', (x) => (x.rolledBack ? [] : [[`revision="${x.held ? OLD_REV(x.h) : CHANNEL_REV}"`, () => END - Math.floor(rnd('hy', x.h) * DAY)]]));
g('nixos_desync_rejected_candidate_info', (x) => (x.rejecting ? [5, 6].map((n) => [`source="nixpkgs",revision="c0ffee000000000000000000000000000000004${n}"`, () => 1]) : []));
// System.
g('nixos_desync_system_generation', one((x) => () => 100 + (x.h % 50)));
g('nixos_desync_system_generation_timestamp_seconds', one((x) => (t) => runsAt(x, t).last + 900));
g('nixos_desync_system_generations', one((x) => () => 10 + (x.h % 20)));
g('nixos_desync_system_reboot_required', one((x) => () => (x.reboot ? 1 : 0)));
g('nixos_desync_system_activation_pending', one(() => () => 0));
g('nixos_desync_system_nixpkgs_info', (x) => [[`revision="${x.outOfDate ? 'abc0001' : 'c0ffee0'}",version="25.11"`, () => 1]]);
g('nixos_desync_system_nixpkgs_timestamp_seconds', one((x) => () => (x.outOfDate ? END - 40 * DAY : END - 3 * DAY)));
// Monitoring.
for (const [n, fn] of [
  ['nixos_desync_upgrade_unit_last_run_success', (x) => () => (x.failing ? 0 : 1)],
  ['nixos_desync_upgrade_unit_last_run_timestamp_seconds', (x) => (t) => runsAt(x, t).last],
  ['nixos_desync_upgrade_unit_last_run_duration_seconds', (x) => () => 700],
  ['nixos_desync_upgrade_unit_running', (x) => (t) => (runsAt(x, t).running ? 1 : 0)],
]) g(n, (x) => [['unit="nixos-upgrade.service"', fn(x)]]);
g('nixos_desync_flake_input_last_modified_timestamp_seconds', (x) => ['nixpkgs', 'home-manager', 'nixos-hardware'].map((i) => [`input="${i}"`, () => END - Math.floor(rnd('in', x.h, i) * 20) * DAY]));
// Exporter.
g('nixos_desync_build_info', (x) => [['version="0.1.0"', () => 1]]);
const COLLECTORS = ['desyncs', 'runs', 'system', 'upgrade_unit', 'flake'];
g('nixos_desync_collector_success', (x) => COLLECTORS.map((k) => [`collector="${k}"`, () => 1]));
g('nixos_desync_collector_duration_seconds', (x) => COLLECTORS.map((k) => [`collector="${k}"`, (t) => 0.00005 + rnd('cd', x.h, k, t) * 0.0002]));
// Runtime (minimal).
c('process_cpu_seconds_total', one((x) => (t) => 10 + (t - START) * 0.002));
g('process_resident_memory_bytes', one((x) => (t) => 60e6 + Math.floor(rnd('rss', x.h, t) * 8e6)));
g('process_open_fds', one(() => () => 22));
g('process_max_fds', one(() => () => 524288));
g('process_start_time_seconds', one((x) => () => START - Math.floor(rnd('start', x.h) * 30 * DAY)));
g('nodejs_eventloop_lag_p99_seconds', one((x) => (t) => 0.01 + rnd('el', x.h, t) * 0.005));

const hosts = Array.from({ length: H }, (_, i) => host(i));
if (a.budget) {
  const budget = 70 + 14 * D;
  const counted = fams.filter(([name]) => name !== 'up');
  const used = (x) => counted.reduce((n, [, , seriesOf]) => n + seriesOf(x).length, 0);
  g('nixos_desync_bench_budget_fill', (x) => Array.from({ length: Math.max(0, budget - used(x)) }, (_, i) => [`slot="${i}"`, () => 1]));
}
const out = a.out ? createWriteStream(a.out) : process.stdout;
let buf = '';
let series = 0;
let samples = 0;
async function flush(force) {
  if (buf.length < 1 << 20 && !force) return;
  const chunk = buf;
  buf = '';
  if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
}
for (const [name, type, seriesOf] of fams) {
  buf += `# TYPE ${a.snapshot ? name : name.replace(/_total$/, '')} ${type}\n`;
  for (const x of hosts) {
    for (const [labels, valueAt] of seriesOf(x)) {
      const l = `{job="${x.job}",instance="${x.instance}"${labels ? ',' + labels : ''}}`;
      series += 1;
      for (const t of TIMES) {
        buf += a.snapshot ? `${name}${l} ${+valueAt(t).toFixed(6)}\n` : `${name}${l} ${+valueAt(t).toFixed(6)} ${t}\n`;
        samples += 1;
      }
      await flush(false);
    }
  }
}
if (!a.snapshot) buf += '# EOF\n';
await flush(true);
if (a.out) await new Promise((r) => out.end(r));
process.stderr.write(JSON.stringify({ hosts: H, desyncs: D, series, samplesPerSeries: TIMES.length, samples, start: START, end: END, seriesPerHost: series / H }) + '\n');
