#!/usr/bin/env node
// Soak mode of the fault suite (issue #11 item 21) and of the chaos test (issue 18), outside CI. Three parts:
//
//   node bench/soak.mjs kills [--kills 200] [--minutes 15] [--seed 1] [--span 1.2] [--json FILE]
//     Real Nix (run it under the shared lock: flock /tmp/nd-real.lock …). A demo host runs
//     `nixos-desync upgrade` (the built CLI) again and again; each run is killed with SIGKILL
//     at a random instant in 0 … span × a clean run's duration (stages slowed a little so every
//     stage is hit), then the next run recovers it. After every kill it checks the fault suite's
//     invariants: pins/ is one complete set whose store paths are valid and GC-rooted; after
//     the recovery run: exit 0, one set, no lock/journal/temp file, only that set's roots,
//     sum of runs_total = number of runs that took the lock, unique history ids, no process
//     of the host left running; every 50 kills a `nix-collect-garbage -d` keeps every pin.
//
//   node bench/soak.mjs fuzz [--configs 10000] [--minutes 10] [--seed 1] [--json FILE]
//     No Nix. Random configs (fast-check) through the CLI's main(): `check-config --json`
//     (exit 0 or 78, a 78 names a `$` path, never a stack trace, stdout one JSON object with
//     the exit code) and, for configs that are JSON objects, `upgrade --dry-run --json` with
//     the state/profiles/run dirs moved into a scratch directory and nixpkgs pointing nowhere
//     (exit 0, 1 or 78, one JSON object, and the dry run creates nothing).
//
//   node bench/soak.mjs chaos [--instants 300] [--flake-instants 60] [--seed S] [--json FILE]
//     Real Nix. Issue 18's chaos test (test/integration/chaos.test.ts, 24 + 12 instants in CI) with
//     more instants: SIGTERM, SIGKILL or SIGTERM then SIGKILL at seeded random instants inside
//     activation, health gate, rollback and commit; the scrape at each instant and the state
//     after each `recover` checked. Runs that test file through vitest (one engine for both).
//
// All print what they tried and what broke, and write it as JSON (--json). Needs a built
// dist/ (scripts/setup.sh test). Figures and commands: docs/security.md "Soak".
import { mkdtemp, mkdir, readdir, readFile, readlink, rm, writeFile, lstat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const D = (p) => import(join(ROOT, 'dist/src', p));
const CLI = join(ROOT, 'dist/src/cli/main.js');

const [mode, ...rest] = process.argv.slice(2);
const args = Object.fromEntries(rest.reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const SEED = Number(args.seed ?? 1);
const MINUTES = Number(args.minutes ?? (mode === 'kills' ? 15 : 10));
const deadline = Date.now() + MINUTES * 60_000;
process.env.NIX_CONFIG ??= 'sandbox = false\nsubstituters =';
const env = process.env;
const say = (s) => process.stderr.write(`soak: ${s}\n`);

let seed = SEED;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);

function cli(argv, extraEnv = {}) {
  const child = spawn(process.execPath, [CLI, ...argv], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b) => (stdout += b));
  child.stderr.on('data', (b) => (stderr += b));
  const done = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

// ------------------------------------------------------------------------------- kills
async function kills() {
  const KILLS = Number(args.kills ?? 200);
  const { createDemoHost } = await D('demo/host.js');
  const { parsePinFile } = await D('state/pinfile.js');
  const dir = await mkdtemp(join(tmpdir(), 'desync-soak-'));
  const DESYNCS = ['home-manager', 'synapse'];
  const host = await createDemoHost(dir, {
    revisions: [{ label: 'rev1' }, { label: 'rev2', broken: ['home-manager'] }, { label: 'rev3', broken: ['matrix-synapse'] }, { label: 'rev4' }],
    desyncs: {
      'home-manager': { requireBuilds: ['home-manager'], maxLagRebuilds: 1000 },
      synapse: { requireBuilds: ['matrix-synapse', 'python3Packages.requests'], maxLagRebuilds: 1000, checks: [['/bin/sh', '-c', 'sleep 0.2']] },
    },
    systemPackages: { 'home-manager': 'home-manager', synapse: 'matrix-synapse' },
  });
  // The host's stand-in systemctl (health gate) first on PATH, as the tests run the CLI.
  const hostEnv = host.path ? { PATH: host.path } : {};
  // Every stage takes a little time, so a random instant lands in each of them.
  const sys = host.config.system;
  const slow = (argv) => ['/bin/sh', '-c', 'sleep 0.3; exec "$@"', 'sh', ...argv];
  await host.writeConfig({ system: { ...sys, build: slow(sys.build), ...(Array.isArray(sys.activate) ? { activate: slow(sys.activate) } : {}) } });

  const readJson = async (f) => JSON.parse(await readFile(f, 'utf8'));
  const total = async () => { try { return Object.values((await readJson(join(host.stateDir, 'state.json'))).runs.total).reduce((a, b) => a + b, 0); } catch { return 0; } };
  const valid = (p) => spawnSync('nix-store', ['--check-validity', p], { env, stdio: 'ignore' }).status === 0;
  const roots = () => execFileSync('nix-store', ['--gc', '--print-roots'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
  const broke = [];
  const check = (cond, what) => { if (!cond) broke.push(what); return cond; };

  async function completeSet(what) {
    let link;
    try { link = await readlink(join(host.stateDir, 'pins')); } catch { return check(false, `${what}: pins is not a symlink`); }
    const names = (await readdir(join(host.stateDir, 'pins')).catch(() => [])).sort();
    check(JSON.stringify(names) === JSON.stringify(DESYNCS.map((d) => `${d}.nix`)), `${what}: pins/ of ${link} has ${names.join(',')}`);
    const r = roots();
    const paths = [];
    for (const n of names) {
      const pin = parsePinFile(await readFile(join(host.stateDir, 'pins', n), 'utf8'));
      if (!check(pin !== undefined, `${what}: ${n} does not parse`)) continue;
      check(valid(pin.storePath), `${what}: ${pin.storePath} is not valid`);
      check(r.includes(pin.storePath), `${what}: ${pin.storePath} is not a GC root`);
      paths.push(pin.storePath);
    }
    return paths;
  }

  async function clean(what) {
    const entries = [];
    const walk = async (d) => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        entries.push(join(d, e.name));
        if (e.isDirectory()) await walk(join(d, e.name));
      }
    };
    await walk(host.stateDir);
    check(!entries.some((p) => p.includes('.tmp-')), `${what}: temp file left`);
    check(!existsSync(join(host.stateDir, 'lock')), `${what}: lock left`);
    check(!existsSync(join(host.stateDir, 'journal.json')), `${what}: journal left`);
    const sets = await readdir(join(host.stateDir, 'sets'));
    check(sets.length === 1, `${what}: ${sets.length} sets`);
    check((await readlink(join(host.stateDir, 'pins')).catch(() => '')) === `sets/${sets[0]}/pins`, `${what}: pins does not show the one set`);
    const mine = roots().split('\n').filter((l) => l.startsWith(host.stateDir + '/'));
    check(mine.every((l) => l.startsWith(join(host.stateDir, 'sets', sets[0] ?? '?', 'roots') + '/')), `${what}: a root outside the committed set`);
    const strays = spawnSync('pgrep', ['-f', host.dir], { encoding: 'utf8' }).stdout.trim();
    check(strays === '', `${what}: processes left running: ${strays}`);
  }

  async function counted(tookLock, what) {
    check((await total()) === tookLock, `${what}: runs_total sum ${await total()} ≠ ${tookLock} runs that took the lock`);
    try {
      const ids = (await readJson(join(host.stateDir, 'history.json'))).runs.map((r) => r.id);
      check(ids.length === new Set(ids).size, `${what}: duplicate history ids`);
    } catch (e) { check(false, `${what}: history.json unreadable: ${e.message}`); }
  }

  // Calibration: how long a clean run takes here (the kill instant is drawn from 0 … 1.2×).
  await host.useRevision('rev1');
  let tookLock = 0;
  const durations = [];
  for (const rev of ['rev1', 'rev4', 'rev1']) {
    await host.useRevision(rev);
    const t = Date.now();
    const r = await cli(['upgrade', '--config', host.configPath], hostEnv).done;
    durations.push(Date.now() - t);
    tookLock += 1;
    if (r.code !== 0) throw new Error(`calibration run failed: ${r.stdout}${r.stderr}`);
  }
  const span = Math.max(...durations) * Number(args.span ?? 1.2);
  say(`clean run ${durations.join('/')} ms; kill instants drawn from 0–${Math.round(span)} ms; ${KILLS} kills, at most ${MINUTES} min`);

  const stages = {};
  const revs = ['rev2', 'rev4', 'rev3', 'rev1'];
  let done = 0;
  let gcs = 0;
  const t0 = Date.now();
  for (let i = 0; i < KILLS && Date.now() < deadline; i++) {
    const before = await total();
    await host.useRevision(revs[i % revs.length]);
    const run = cli(['upgrade', '--config', host.configPath], hostEnv);
    const at = Math.floor(rand() * span);
    await new Promise((r) => setTimeout(r, at));
    run.child.kill('SIGKILL');
    const res = await run.done;
    // Where it died: the journal's stage, else whether it held the lock / had recorded itself.
    const lock = existsSync(join(host.stateDir, 'lock'));
    const journal = await readJson(join(host.stateDir, 'journal.json')).catch(() => null);
    const grew = (await total()) > before;
    const stage = res.signal !== 'SIGKILL' ? 'finished' : journal ? journal.stage : lock ? (grew ? 'after-record' : 'lock-before-journal') : grew ? 'after-release' : 'before-lock';
    stages[stage] = (stages[stage] ?? 0) + 1;
    if (lock || grew) tookLock += 1;
    const what = `kill ${i} at ${at} ms (${stage})`;
    await completeSet(what);
    const next = await cli(['upgrade', '--config', host.configPath], hostEnv).done;
    tookLock += 1;
    check(next.code === 0, `${what}: recovery run exit ${next.code}: ${(next.stdout + next.stderr).slice(-400)}`);
    await clean(what);
    await counted(tookLock, what);
    if ((i + 1) % 50 === 0) {
      const pinned = await completeSet(`${what} before GC`);
      execFileSync('nix-collect-garbage', ['-d'], { env, stdio: 'ignore' });
      gcs += 1;
      for (const p of pinned) check(valid(p), `${what}: ${p} deleted by GC`);
    }
    done += 1;
    if (done % 20 === 0) say(`${done} kills, ${broke.length} broken, ${Math.round((Date.now() - t0) / 1000)} s`);
  }
  await rm(dir, { recursive: true, force: true });
  return { mode: 'kills', seed: SEED, kills: done, requested: KILLS, killSpanMs: Math.round(span), cleanRunMs: durations, stages, gcs, runsThatTookTheLock: tookLock, seconds: Math.round((Date.now() - t0) / 1000), broken: broke.length, failures: broke.slice(0, 50) };
}

// -------------------------------------------------------------------------------- fuzz
async function fuzz() {
  const CONFIGS = Number(args.configs ?? 10000);
  const { default: fc } = await import('fast-check');
  const { main } = await D('cli/main.js');
  const nasty = fc.constantFrom('../../etc', 'a b', '$(reboot)', '`id`', 'x;rm -rf /', '${builtins.abort "x"}', '"', "''", '\\', 'é', '😀', 'a'.repeat(200), '', '.', '-a', 'A', 'let', 'a.b', '\u0000', 'a\nb');
  const junk = fc.letrec((tie) => ({
    v: fc.oneof({ depthSize: 'small' }, fc.string(), nasty, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(fc.oneof(fc.string(), nasty), tie('v'), { maxKeys: 3 })),
  })).v;
  // Mostly valid values with a hostile one now and then, so that both paths are exercised:
  // accepted configs reach the loop, rejected ones must name their field.
  const mostly = (good, bad) => fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: bad, weight: 1 });
  const dur = mostly(fc.constantFrom('30s', '10m', '3h', '14d', '2w', '3w', '24d', '596h'), fc.oneof(fc.constantFrom('25d', '4w', '597h', '999999999w', '0s', '1.5h', 'soon', '10'), nasty, junk));
  const attr = mostly(fc.constantFrom('hello', 'home-manager', 'python3Packages.requests', 'a.b.c', "x'"), fc.oneof(nasty, fc.string(), fc.constant('let.x')));
  const argv = mostly(fc.array(fc.constantFrom('/bin/true', '--quick', '$(reboot)', '; rm -rf /', 'a b'), { minLength: 1, maxLength: 3 }), fc.oneof(fc.constant([]), fc.array(nasty, { maxLength: 2 }), junk));
  const desync = fc.record({
    requireBuilds: mostly(fc.array(attr, { maxLength: 3 }), junk),
    checks: mostly(fc.array(argv, { maxLength: 2 }), junk),
    maxLagRebuilds: mostly(fc.oneof(fc.integer({ min: 0, max: 30 }), fc.constant(null)), fc.oneof(fc.integer({ min: -3, max: -1 }), fc.constant(1.5), fc.constant(1_000_001), junk)),
    maxBehind: mostly(fc.oneof(dur, fc.constant(null)), junk),
    nixpkgsConfig: mostly(fc.dictionary(fc.constantFrom('allowUnfree', 'allowBroken', 'cudaSupport'), fc.oneof(fc.boolean(), fc.string(), fc.constant(null)), { maxKeys: 2 }), junk),
    extra: junk,
  }, { requiredKeys: ['requireBuilds'] }).map((d) => (rand() < 0.9 ? (({ extra: _, ...x }) => x)(d) : d));
  const name = mostly(fc.constantFrom('home-manager', 'synapse', 'hm', 'a_b-9', 'x'.repeat(63)), fc.oneof(nasty, fc.string()));
  const config = fc.record({
    nixpkgs: mostly(fc.constantFrom('/nix/var/nix/profiles/per-user/root/channels/nixos', '/etc/nixpkgs'), fc.oneof(fc.constantFrom('relative', '/a/../b'), nasty, junk)),
    channel: mostly(fc.record({ name: mostly(fc.constantFrom('nixos', 'nixos-unstable', 'nixos-25.11'), nasty), update: mostly(fc.boolean(), junk) }, { requiredKeys: [] }), junk),
    desyncs: mostly(fc.dictionary(name, desync, { maxKeys: 3 }), junk),
    onBreach: mostly(fc.constantFrom('fail', 'continue'), nasty),
    timeouts: mostly(fc.record({ channel: dur, build: dur, check: dur, system: dur }, { requiredKeys: [] }), junk),
    system: mostly(fc.record({ build: argv, activate: mostly(fc.oneof(fc.constant(null), argv), junk) }, { requiredKeys: [] }), junk),
    exporter: mostly(fc.record({ listenAddress: mostly(fc.constantFrom('127.0.0.1:9793', '[::1]:9793', ':9793'), fc.oneof(fc.constantFrom('host', ':99999'), nasty)) }, { requiredKeys: [] }), junk),
    unknownKey: junk,
  }, { requiredKeys: [] }).map((c) => (rand() < 0.9 ? (({ unknownKey: _, ...x }) => x)(c) : c));

  const dir = await mkdtemp(join(tmpdir(), 'desync-soak-fuzz-'));
  const broke = [];
  const codes = { 'check-config': {}, 'upgrade --dry-run': {} };
  const problems = {};
  let tried = 0;
  const t0 = Date.now();
  const run = async (argv) => {
    let stdout = '';
    let stderr = '';
    const code = await main(argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: {} });
    return { code, stdout, stderr };
  };
  const oneJson = (out, code, what) => {
    try {
      const doc = JSON.parse(out);
      if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return broke.push(`${what}: --json printed ${out.slice(0, 80)}`);
      if ('exitCode' in doc && doc.exitCode !== code) broke.push(`${what}: exitCode ${doc.exitCode} in JSON, ${code} returned`);
    } catch {
      broke.push(`${what}: --json stdout is not one JSON object: ${out.slice(0, 120)}`);
    }
  };
  const samples = fc.sample(config, { numRuns: CONFIGS, seed: SEED });
  for (const [i, raw] of samples.entries()) {
    if (Date.now() > deadline) break;
    const f = join(dir, 'c.json');
    await writeFile(f, JSON.stringify(raw) ?? 'null');
    const what = `config ${i}`;
    const c = await run(['check-config', '--config', f, '--json']);
    codes['check-config'][c.code] = (codes['check-config'][c.code] ?? 0) + 1;
    if (![0, 78].includes(c.code)) broke.push(`${what}: check-config exit ${c.code}: ${c.stderr.slice(0, 200)}`);
    if (/\n\s+at /.test(c.stderr)) broke.push(`${what}: stack trace`);
    if (c.code === 78) {
      if (!/\$/.test(c.stderr)) broke.push(`${what}: 78 without a JSON path`);
      oneJson(c.stdout, c.code, `${what} check-config`);
      for (const m of c.stderr.matchAll(/^ {2}(\$[^:]*):/gm)) {
        const k = m[1].replace(/\[\d+\]/g, '[]').replace(/\.desyncs(\.[^.[]+|\["[^"]*"\])/, '.desyncs.<name>');
        problems[k] = (problems[k] ?? 0) + 1;
      }
    }
    if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) {
      const scratch = join(dir, `s${i}`);
      const moved = { ...raw, stateDir: join(scratch, 'state'), profilesDir: join(scratch, 'profiles'), runDir: join(scratch, 'run'), nixpkgs: join(scratch, 'no-nixpkgs') };
      await writeFile(f, JSON.stringify(moved));
      const u = await run(['upgrade', '--dry-run', '--json', '--config', f]);
      codes['upgrade --dry-run'][u.code] = (codes['upgrade --dry-run'][u.code] ?? 0) + 1;
      if (![0, 1, 78].includes(u.code)) broke.push(`${what}: upgrade --dry-run exit ${u.code}: ${u.stderr.slice(0, 200)}`);
      if (/\n\s+at /.test(u.stderr)) broke.push(`${what}: upgrade stack trace`);
      oneJson(u.stdout, u.code, `${what} upgrade --dry-run`);
      if (await lstat(scratch).then(() => true, () => false)) broke.push(`${what}: the dry run created ${scratch}`);
    }
    tried += 1;
    if (tried % 2000 === 0) say(`${tried} configs, ${broke.length} broken, ${Math.round((Date.now() - t0) / 1000)} s`);
  }
  await rm(dir, { recursive: true, force: true });
  const topProblems = Object.entries(problems).sort((a, b) => b[1] - a[1]).slice(0, 12);
  return { mode: 'fuzz', seed: SEED, configs: tried, requested: CONFIGS, seconds: Math.round((Date.now() - t0) / 1000), exitCodes: codes, topRejectedFields: Object.fromEntries(topProblems), broken: broke.length, failures: broke.slice(0, 50) };
}

// -------------------------------------------------------------------------------- chaos
async function chaos() {
  const dir = await mkdtemp(join(tmpdir(), 'desync-soak-chaos-'));
  const file = join(dir, 'report.json');
  const seed = args.seed ?? String(Math.floor(Math.random() * 2 ** 31));
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', 'test/integration/chaos.test.ts'], {
    cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...env, CHAOS_INSTANTS: String(args.instants ?? 300), CHAOS_FLAKE_INSTANTS: String(args['flake-instants'] ?? 60), CHAOS_SEED: seed, CHAOS_REPORT: file },
  });
  const report = await readFile(file, 'utf8').then((t) => JSON.parse(t), () => null);
  await rm(dir, { recursive: true, force: true });
  if (report === null) return { mode: 'chaos', seed: Number(seed), broken: 1, failures: [`the chaos test wrote no report (vitest exit ${r.status})`] };
  const modes = ['channel', 'flake'].filter((m) => report[m]);
  const failures = modes.flatMap((m) => report[m].broken.map((b) => ({ mode: m, ...b })));
  const broken = failures.length + (r.status === 0 ? 0 : 1);
  return { mode: 'chaos', ...report, ...Object.fromEntries(modes.map((m) => [m, { ...report[m], broken: report[m].broken.length }])), broken, failures: failures.slice(0, 50), vitestExit: r.status };
}

const modes = { kills, fuzz, chaos };
if (!(mode in modes)) {
  process.stderr.write('usage: node bench/soak.mjs kills|fuzz|chaos [--kills N|--configs N|--instants N] [--minutes M] [--seed S] [--json FILE]\n');
  process.exit(64);
}
const report = await modes[mode]();
process.stdout.write(JSON.stringify(report, null, 2) + '\n');
if (args.json) {
  await mkdir(dirname(args.json), { recursive: true });
  await writeFile(args.json, JSON.stringify(report, null, 2) + '\n');
}
say(`${mode}: ${report.broken} broken`);
process.exitCode = report.broken === 0 ? 0 : 1;
