// The chaos test's engine (issue 18): a demo host whose activations, health gate, rollbacks and
// commits take a little time, runs of the real CLI signalled (SIGTERM, SIGKILL, or SIGTERM then
// SIGKILL as systemd's stop timeout does) at a seeded random instant inside one of those phases,
// and the invariants checked at that instant (a scrape) and after the next `recover`. Used by
// test/integration/chaos.test.ts (≥ 30 instants in CI) and `node bench/soak.mjs chaos` (≥ 300).
import { readdir, readFile, readlink, realpath, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createDemoHost } from '../../src/demo/host.js';
import { createFlakeHost } from '../../src/demo/fake-flake.js';
import { gitRevisionOf } from '../../src/demo/fake-nixpkgs.js';
import { loadConfig } from '../../src/config/load.js';
import { NIX_ENV, runCli, startCli, waitUntil } from './cli.js';
import { sample, startTestExporter, type StartedExporter } from '../fixtures/exporter/start.js';

export const PHASES = ['activation', 'health', 'rollback', 'commit'] as const;
export type Phase = (typeof PHASES)[number];
export const SIGNALS = ['SIGKILL', 'SIGTERM', 'SIGTERM+SIGKILL'] as const;
export type ChaosSignal = (typeof SIGNALS)[number];

/** Seconds every activation sleeps before and after its switch (fake switch-to-configuration). */
const ACTIVATION_DELAY = 0.2;
/** How long each phase lasts here, roughly: the window a signal instant is drawn from. */
const WINDOW_MS: Record<Phase, number> = { activation: 2 * ACTIVATION_DELAY * 1000 - 50, health: 300, rollback: 2 * ACTIVATION_DELAY * 1000 - 50, commit: ACTIVATION_DELAY * 1000 + 200 };

/** mulberry32: small, seedable, the same sequence on every Node. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the engine needs of a host, channel or flake. */
interface ChaosHost {
  dir: string;
  configPath: string;
  stateDir: string;
  profilesDir: string;
  runDir: string;
  useRevision(label: string): Promise<unknown>;
  /** The committed set as the host shows it (pin files; flake: and flake.lock), byte for byte. */
  shown(): Promise<Record<string, string>>;
  /** Set `id` as it would be shown once committed. */
  ofSet(id: string): Promise<Record<string, string>>;
  /** Why the committed set is not durable in the source yet (flake: flake.lock differs from git's HEAD), or null. */
  notDurable(): string | null;
}

export interface ChaosWorld {
  mode: 'channel' | 'flake';
  host: ChaosHost;
  exporter: StartedExporter;
  /** Runs that took the lock: what the sum of runs_total must be. */
  tookLock: number;
  close(): Promise<void>;
}

const REVISIONS = [{ label: 'rev1' }, { label: 'rev2' }, { label: 'crash', crashes: ['matrix-synapse'] }];
const DESYNCS = { 'home-manager': { requireBuilds: ['home-manager'] }, synapse: { requireBuilds: ['matrix-synapse'] } };
const SYSTEM_PACKAGES = { 'home-manager': 'home-manager', synapse: 'matrix-synapse' };
/** A 0.3 s health check whose argv names the host (so a leftover one is found). */
const health = (dir: string) => ({ settle: '0s', checks: [[process.execPath, '-e', 'setTimeout(() => {}, 300)', join(dir, 'health-check')]] });

/** Channel mode: the demo host. Flake mode: a flake host whose flake.lock the loop commits with git, activated by the same fake switch-to-configuration. */
async function chaosHost(dir: string, mode: 'channel' | 'flake'): Promise<ChaosHost> {
  const pins = (d: string): Promise<Record<string, string>> => pinBytes(d);
  if (mode === 'channel') {
    const h = await createDemoHost(dir, { revisions: REVISIONS, desyncs: DESYNCS, systemPackages: SYSTEM_PACKAGES, extraConfig: { health: health(dir) } });
    return { ...h, shown: () => pins(join(h.stateDir, 'pins')), ofSet: (id) => pins(join(h.stateDir, 'sets', id, 'pins')), notDurable: () => null };
  }
  const h = await createFlakeHost(dir, { revisions: REVISIONS, desyncs: DESYNCS, systemPackages: SYSTEM_PACKAGES, switchable: true, env: { ...process.env, ...NIX_ENV } });
  const sys = h.config.system as { build: string[] };
  await h.writeConfig({ system: { build: sys.build }, health: health(dir), flake: { ...(h.config.flake as object), commitLockFile: true } });
  const lock = (f: string): Promise<Record<string, string>> => readFile(f, 'utf8').then((t) => ({ 'flake.lock': t }), () => ({}));
  return {
    ...h,
    shown: async () => ({ ...(await pins(join(h.stateDir, 'pins'))), ...(await lock(h.lockFile)) }),
    ofSet: async (id) => ({ ...(await pins(join(h.stateDir, 'sets', id, 'pins'))), ...(await lock(join(h.stateDir, 'sets', id, 'flake', 'candidate.lock'))) }),
    notDurable: () => (spawnSync('git', ['-C', h.flakeDir, 'diff', '--quiet', 'HEAD', '--', 'flake.lock']).status === 0 ? null : 'flake.lock is not committed to git (commitLockFile)'),
  };
}

export async function chaosWorld(dir: string, mode: 'channel' | 'flake' = 'channel'): Promise<ChaosWorld> {
  const host = await chaosHost(dir, mode);
  await writeFile(join(host.runDir, 'activation-delay'), `${ACTIVATION_DELAY}\n`);
  const first = await runCli(['upgrade', '--config', host.configPath]);
  if (first.code !== 0) throw new Error(`the chaos host's first run failed:\n${first.stdout}${first.stderr}`);
  const exporter = await startTestExporter(await loadConfig(host.configPath));
  return { mode, host, exporter, tookLock: 1, close: () => exporter.close() };
}

/** The toplevel's packages as the fake switch-to-configuration reads them: its revision label, and whether a unit of it fails once activated. */
async function contents(toplevel: string): Promise<{ label: string; crashes: boolean }> {
  const pkgs = (await readFile(join(toplevel, 'packages'), 'utf8')).split(/\s+/).filter((p) => p !== '');
  const texts = await Promise.all(pkgs.map((p) => readFile(p, 'utf8')));
  return { label: texts[0]?.split(/\s+/)[1] ?? '?', crashes: texts.some((t) => t.includes('crashes-at-runtime')) };
}

const runningSystem = (w: ChaosWorld): Promise<string> => realpath(join(w.host.runDir, 'current-system'));

async function pinBytes(dir: string): Promise<Record<string, string>> {
  const names = (await readdir(dir).catch(() => [] as string[])).sort();
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await readFile(join(dir, n), 'utf8')] as const)));
}

async function readJson<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch {
    return null;
  }
}

interface JournalView { runId: string; stage: string; activation: { toplevel: string } | null; verdict: unknown }
interface StateView { runs: { total: Record<string, number> }; committed: { setId: string | null } }

const runsTotal = async (w: ChaosWorld): Promise<number> =>
  Object.values((await readJson<StateView>(join(w.host.stateDir, 'state.json')))?.runs.total ?? {}).reduce((a, b) => a + b, 0);

/** Where a run is, from its journal: the phase a signal now would land in. */
export function phaseOf(j: JournalView | null): Phase | 'other' {
  if (j === null) return 'other';
  if (j.verdict) return 'rollback';
  if (j.stage === 'activate') return j.activation ? 'activation' : 'other'; // activating once the journal names the toplevel
  if (j.stage === 'health') return 'health';
  if (j.stage === 'commit') return 'commit';
  return 'other';
}

export interface Instant {
  n: number;
  target: Phase;
  signal: ChaosSignal;
  revision: string;
  /** Where the run was when the (first) signal was sent: a phase, `other` (before activation), `record` (after its journal), or `finished` (it ended first). */
  phase: Phase | 'other' | 'record' | 'finished';
  atMs: number;
  exit: string;
  /** The scrape after the signal: a verified system, system_unverified 1, or 1 for a verified one a dead run's journal still names. */
  scrape: 'verified' | 'unverified' | 'unverified-excused';
  /** What the check found wrong; empty when every invariant held. */
  broken: string[];
}

/** Instant `n`: a run, a signal inside one phase, the scrape, `recover`, the invariants. */
export async function chaosInstant(w: ChaosWorld, n: number, rand: () => number): Promise<Instant> {
  const { host } = w;
  // Every (phase, signal) pair once per 12 instants; the instant inside the phase is drawn.
  const target = PHASES[n % PHASES.length]!;
  const signal = SIGNALS[Math.floor(n / PHASES.length) % SIGNALS.length]!;
  const fraction = rand();
  const secondAfterMs = Math.floor(rand() * 300);
  const broken: string[] = [];
  const check = (ok: boolean, what: string): void => void (ok || broken.push(what));

  // The verified system before the run (the last recovery checked it), and what the host shows of its committed set.
  const before = await runningSystem(w);
  // A candidate that fails its health gate for a rollback (--retry: tried again though rejected), else the healthy revision not running.
  const beforeLabel = (await contents(before)).label;
  const revision = target === 'rollback' || (target === 'health' && rand() < 0.5) ? 'crash' : beforeLabel === 'rev1' ? 'rev2' : 'rev1';
  await host.useRevision(revision);
  const shownBefore = await host.shown();
  const totalBefore = await runsTotal(w);

  const journalFile = join(host.stateDir, 'journal.json');
  const run = startCli(['upgrade', '--config', host.configPath, ...(revision === 'crash' ? ['--retry'] : [])]);
  let exited = false;
  void run.done.then(() => (exited = true));
  const t0 = Date.now();
  let journal: JournalView | null = null;
  let runId: string | null = null;
  let cand: string | null = null; // the toplevel the run activates (its journal names it first)
  const look = async (): Promise<JournalView | null> => {
    journal = await readJson<JournalView>(journalFile);
    runId = journal?.runId ?? runId;
    cand = journal?.activation?.toplevel ?? cand;
    return journal;
  };
  await waitUntil(async () => exited || phaseOf(await look()) === target, 120_000);
  await new Promise((r) => setTimeout(r, Math.floor(fraction * WINDOW_MS[target])));
  // After its journal is gone the run is recording itself and releasing the lock.
  const phase = exited ? 'finished' : (await look()) === null && runId !== null ? 'record' : phaseOf(journal);
  const atMs = Date.now() - t0;
  run.child.kill(signal === 'SIGKILL' ? 'SIGKILL' : 'SIGTERM');
  if (signal === 'SIGTERM+SIGKILL') setTimeout(() => run.child.kill('SIGKILL'), secondAfterMs);
  const res = await run.done;
  const exit = res.signal ?? `exit ${res.code}`;
  const out = res.stdout + res.stderr;
  cand ??= /system +.* ok → (\/nix\/store\/\S+)/.exec(out)?.[1] ?? null;
  await look();
  const history = async (): Promise<string[]> => ((await readJson<{ runs: Array<{ id: string }> }>(join(host.stateDir, 'history.json')))?.runs ?? []).map((r) => r.id);
  // A SIGTERM stops a run through its handler; only the process's own exit, after the run recorded itself, may still die of it.
  if (signal === 'SIGTERM' && res.code === null) check(runId !== null && (await history()).includes(runId), `SIGTERM killed the run (${exit}) before it recorded itself`);

  // Did it take the lock? It wrote a journal, left the lock, or recorded itself.
  if (runId !== null || existsSync(join(host.stateDir, 'lock')) || (await runsTotal(w)) > totalBefore) w.tookLock += 1;
  // Its set, when it passed the commit point: what the host must show after recovery.
  const state = await readJson<StateView>(join(host.stateDir, 'state.json'));
  const committedByIt = runId !== null && state?.committed.setId === runId;
  const expected = committedByIt ? await host.ofSet(runId!) : shownBefore;
  check(!committedByIt || cand !== null, 'the run committed without activating anything');

  // At this instant: a scrape shows a verified system, or system_unverified 1. A killed run's
  // activation may still be switching: the scrape counts when the system was the same around it.
  let text = '';
  let running = '';
  for (let same = false; !same;) {
    running = await runningSystem(w);
    text = await (await fetch(`${w.exporter.url}metrics`)).text();
    same = (await runningSystem(w)) === running;
  }
  const unverified = sample(text, 'nixos_desync_system_unverified');

  check(sample(text, 'nixos_desync_run_in_progress') === 0, `the scrape after the signal shows a run in progress`);
  check(running === before || running === cand, `${running} runs: neither the system before the run nor its candidate`);
  // Verified, as the test knows it: the system before the run, or the candidate once committed and made the boot default.
  const finished = committedByIt && running === cand && (await newestGeneration(w)) === cand && (await realpath(join(host.runDir, 'boot-default'))) === cand;
  const verified = running === before || finished;
  if (unverified !== 1) check(verified && !(await contents(running)).crashes, `the scrape shows system_unverified ${unverified} while ${running} (${(await contents(running)).label}) runs unverified`);
  // A verified system is not flagged — unless a dead run's journal still names it and nothing can tell how far that run got.
  const excused = running === cand && (journal as JournalView | null)?.activation?.toplevel === cand;
  if (unverified === 1) check(!verified || excused, `the scrape shows system_unverified 1 while the verified ${running} runs`);
  const scrape = unverified !== 1 ? 'verified' : verified ? 'unverified-excused' : 'unverified';
  if (unverified === 1) check(sample(text, 'nixos_desync_last_health_check_success') === 0, 'system_unverified 1 with last_health_check_success 1');

  // The next recovery, as the module's recover unit runs it.
  const rec = await runCli(['recover', '--config', host.configPath]);
  check(rec.code === 0, `recover exit ${rec.code}: ${(rec.stdout + rec.stderr).slice(-600)}`);
  // The running system is the committed candidate, or the one before the run.
  const want = committedByIt ? cand : before;
  check((await runningSystem(w)) === want, `after recovery ${await runningSystem(w)} runs, not ${committedByIt ? 'the committed candidate' : 'the system before the run'} ${want}`);
  if (runId !== null) check((await history()).includes(runId), `run ${runId} is not in the history after recovery`);
  await afterRecovery(w, expected, check);
  return { n, target, signal, revision, phase, atMs, exit, scrape, broken };
}

async function newestGeneration(w: ChaosWorld): Promise<string> {
  const generations = (await readdir(w.host.profilesDir)).filter((n) => /^system-\d+-link$/.test(n)).sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1]));
  return realpath(join(w.host.profilesDir, generations.at(-1)!));
}

/** After `recover`: the running system is the profile's newest generation and the boot default and verified, one committed set byte for byte, every run counted once, nothing left over. */
async function afterRecovery(w: ChaosWorld, expected: Record<string, string>, check: (ok: boolean, what: string) => void): Promise<void> {
  const { host } = w;
  const running = await runningSystem(w);
  const newest = await newestGeneration(w);
  check(running === newest, `after recovery ${running} runs, the profile's newest generation is ${newest}`);
  check(await realpath(join(host.profilesDir, 'system')) === newest, 'the profile does not show its newest generation');
  check(await realpath(join(host.runDir, 'boot-default')) === newest, 'the boot default is not the newest generation');
  check(!(await contents(running)).crashes, `after recovery ${running} runs, a system whose unit fails`);
  // Byte for byte one committed set: pins/ is that set's, and it is the one the run committed (or the one before).
  const link = await readlink(join(host.stateDir, 'pins')).catch(() => '');
  const state = await readJson<StateView>(join(host.stateDir, 'state.json'));
  check(link === `sets/${state?.committed.setId}/pins`, `pins -> ${link}, committed set ${state?.committed.setId}`);
  const shown = await host.shown();
  check(JSON.stringify(shown) === JSON.stringify(expected), `after recovery ${Object.keys(shown).join(', ')} is not the committed set byte for byte`);
  // The pins are those the running system was built from (the fake nixpkgs writes its label into every package).
  const label = (await contents(running)).label;
  if (w.mode === 'channel') check(Object.values(shown).every((pin) => pin.includes(gitRevisionOf(label))), `the pins are not those of the running system's revision ${label}`);
  const why = host.notDurable();
  check(why === null, `after recovery ${why}`);
  check((await readdir(join(host.stateDir, 'sets'))).length === 1, 'more than one set left');
  check(!existsSync(join(host.stateDir, 'lock')) && !existsSync(join(host.stateDir, 'journal.json')), 'a lock or journal left after recovery');
  // Every run counted once.
  const total = await runsTotal(w);
  check(total === w.tookLock, `runs_total sums to ${total}, ${w.tookLock} runs took the lock`);
  const ids = ((await readJson<{ runs: Array<{ id: string }> }>(join(host.stateDir, 'history.json')))?.runs ?? []).map((r) => r.id);
  check(ids.length === new Set(ids).size, 'a run id twice in the history');
  // The exporter agrees: verified.
  const text = await (await fetch(`${w.exporter.url}metrics`)).text().catch(() => '');
  const settled = await waitUntil(async () => sample(await (await fetch(`${w.exporter.url}metrics`)).text(), 'nixos_desync_system_unverified') === 0, 2000);
  check(settled, `after recovery the scrape still shows system_unverified ${sample(text, 'nixos_desync_system_unverified')}`);
  // Nothing of the killed run still runs (its activation included).
  check((await strays(host)).length === 0, `processes left running after recovery: ${(await strays(host)).join('; ')}`);
}

/** Processes of this host still running: its CLI runs, and switch-to-configuration of its toplevels (their script names its run dir). */
async function strays(host: ChaosHost): Promise<string[]> {
  const pids = spawnSync('pgrep', ['-f', `${host.dir}|/bin/switch-to-configuration`], { encoding: 'utf8' }).stdout.split('\n').filter((p) => p !== '');
  const mine: string[] = [];
  for (const pid of pids) {
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const script = argv.find((a) => a.endsWith('/bin/switch-to-configuration'));
    const ours = argv.some((a) => a.includes(host.dir)) || (script !== undefined && (await readFile(script, 'utf8').catch(() => '')).includes(host.runDir));
    if (ours) mine.push(`${pid} ${argv.join(' ')}`);
  }
  return mine;
}
