// Real systemd for tests: boots the cached Debian rootfs (scripts/test-rootfs.sh, built by
// `scripts/setup.sh test`) with systemd-nspawn as PID 1 of its own namespaces, on an overlay
// (the rootfs is never written), with loopback-only networking, and runs commands inside it
// with no capability the container's PID 1 lacks. docs/development.md, "Real systemd in
// tests", is the user's guide; the pitfalls of systemd in nspawn are listed there.
//
//   const ok = requireSystemd();
//   describe.skipIf(!ok)('…', () => {
//     let c: SystemdContainer;
//     beforeAll(async () => { c = await bootSystemd({ units: { 'x.service': '…' } }); });
//     afterAll(() => c?.stop());
//     it('…', async () => { expect((await c.exec(['systemctl', 'is-active', 'x'])).stdout).toBe('active\n'); });
//   });
//
// Every process started here is tracked by PID and stopped by stop() (or, should the test
// process exit first, killed by an exit hook; a hard lifetime cap covers a killed runner).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, statfsSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCommand, type RunResult } from '../../src/util/exec.js';
import { inCi, requireTools } from './tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const LAUNCH = join(ROOT, 'test/helpers/nspawn-launch.sh');
const ENTER = join(ROOT, 'test/helpers/nspawn-enter.sh');
const ROOTFS_SCRIPT = join(ROOT, 'scripts/test-rootfs.sh');

/** Where scripts/test-rootfs.sh keeps the rootfs (its VERSION names the directory). */
export const TEST_CACHE = process.env.NIXOS_DESYNC_TEST_CACHE ?? '/var/cache/nixos-desync-test';
export const ROOTFS = join(TEST_CACHE, `bookworm-v${/^VERSION=([0-9]+)$/m.exec(readFileSync(ROOTFS_SCRIPT, 'utf8'))![1]}`);

/** PATH inside the container (Debian's). */
export const CONTAINER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * True when a real systemd can boot here (the tools, root, the cached rootfs). Like
 * requireTools: false on a laptop without them (the suite skips), throws under CI.
 */
export function requireSystemd(): boolean {
  if (!requireTools('systemd-nspawn', 'setpriv', 'nsenter', 'unshare', 'timeout')) return false;
  const problem = process.getuid?.() !== 0
    ? 'the real-systemd tests must run as root (systemd-nspawn)'
    : !existsSync(join(ROOTFS, 'lib/systemd/systemd'))
      ? `no test rootfs at ${ROOTFS}: run scripts/setup.sh test (or scripts/test-rootfs.sh) as root`
      : null;
  if (problem === null) return true;
  if (inCi()) throw new Error(`CI is set but real systemd cannot boot: ${problem}`);
  return false;
}

export interface Bind {
  /** Host path. */
  src: string;
  /** Path inside the container (default: the same as src). */
  dst?: string;
  readOnly?: boolean;
}

export interface FileSpec {
  content: string;
  mode?: number;
}

export interface BootOptions {
  /** Container (machine and host) name; default a unique one. [A-Za-z0-9-], at most 40. */
  name?: string;
  /** The D-Bus daemon: dbus-broker (default; DynamicUser units need it) or the classic dbus-daemon. */
  dbus?: 'broker' | 'daemon';
  /** Unit files put in /etc/systemd/system before the boot (name → content). */
  units?: Record<string, string>;
  /** Any files put into the container before the boot (absolute container path → content). */
  files?: Record<string, string | FileSpec>;
  /** Host directories or files bound into the container (e.g. /nix/store read-only). */
  binds?: Bind[];
  /** More systemd-nspawn arguments (e.g. `--setenv=…`). */
  nspawnArgs?: string[];
  /** Accept `degraded` (some unit failed during boot) as booted; default: only `running`. */
  allowDegraded?: boolean;
  /** How long the boot may take until `is-system-running --wait` answers (default 60 s). */
  readyTimeoutMs?: number;
  /** Hard cap on the container's life, then orderly shutdown (default 30 min). */
  lifetimeSeconds?: number;
}

export interface ExecOptions {
  timeoutMs?: number;
  /** Environment of the command inside (on top of PATH, LANG, TERM, SYSTEMD_PAGER, SYSTEMD_COLORS). */
  env?: Record<string, string>;
}

export interface SystemdContainer {
  readonly name: string;
  /** The container's PID 1 as a host PID (changes on reboot). */
  readonly leader: number;
  /** The directory holding upper/ (the container's writes), console.log, … */
  readonly runDir: string;
  /** How long the last boot took until `is-system-running --wait` answered, in ms. */
  readonly bootMs: number;
  /** `running` or `degraded` (with allowDegraded), as the last boot ended. */
  readonly bootState: string;
  /** The container's root as seen from the host (`/proc/<leader>/root`): read files here. */
  readonly root: string;
  /** Runs argv inside the container (its namespaces, capabilities bounded by its PID 1's). */
  exec(argv: readonly string[], o?: ExecOptions): Promise<RunResult>;
  /** exec(['systemctl', ...args]). */
  systemctl(...args: string[]): Promise<RunResult>;
  /** Writes a file into the running container (parents created, owned by its root). */
  writeFile(path: string, content: string, mode?: number): void;
  /** Writes unit files into /etc/systemd/system, then `systemctl daemon-reload`. */
  installUnits(units: Record<string, string>): Promise<void>;
  /**
   * A directory with `systemctl`, `journalctl` (or `names`) wrappers that run the real tool in
   * this container: put it first on a host program's PATH. Follows the container across reboots.
   */
  wrappers(names?: string[]): string;
  /** Stops the container and boots it again on the same upper dir (its writes survive; /run does not). */
  reboot(o?: { allowDegraded?: boolean }): Promise<void>;
  /** Orderly shutdown, then removes everything it made (processes, cgroups, run dir). Idempotent. */
  stop(): Promise<void>;
}

// ---- process bookkeeping -------------------------------------------------------------

interface Instance {
  launcher: ChildProcess | null;
  nspawn: number | null;
  leader: number | null;
  runDir: string;
  cgroups: string[];
}

const live = new Set<Instance>();
let exitHook = false;

/** Should the test process exit with containers still up: kill them (sync), remove their dirs. */
function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const i of live) {
      for (const pid of [i.leader, i.nspawn, i.launcher?.pid ?? null]) {
        if (pid !== null) tryKill(pid, 'SIGKILL');
      }
      rmSync(i.runDir, { recursive: true, force: true });
    }
  });
}

function tryKill(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone */
  }
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/** Alive and not a zombie. */
function alive(pid: number | null): boolean {
  if (pid === null) return false;
  const stat = readOr(`/proc/${pid}/stat`, '');
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== '' && state !== 'Z' && state !== 'X';
}

function comm(pid: number): string {
  return readOr(`/proc/${pid}/comm`, '').trim();
}

function children(pid: number): number[] {
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tasks.flatMap((t) => readOr(`/proc/${pid}/task/${t}/children`, '').split(' ').filter((s) => /^[0-9]+$/.test(s)).map(Number));
}

/** The container's PID 1: the child of nspawn whose innermost namespace PID is 1. */
function findLeader(nspawn: number): number | null {
  for (const c of children(nspawn)) {
    const m = /^NSpid:\s+(.+)$/m.exec(readOr(`/proc/${c}/status`, ''));
    const ids = m ? m[1]!.trim().split(/\s+/) : [];
    if (ids.length > 1 && ids[ids.length - 1] === '1') return c;
  }
  return null;
}

async function waitGone(pids: Array<number | null>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!pids.some(alive)) return true;
    await sleep(25);
  }
  return !pids.some(alive);
}

// ---- capabilities ---------------------------------------------------------------------

// Capability numbers → names as setpriv spells them (linux/capability.h order).
const CAPS = ['chown', 'dac_override', 'dac_read_search', 'fowner', 'fsetid', 'kill', 'setgid', 'setuid', 'setpcap', 'linux_immutable',
  'net_bind_service', 'net_broadcast', 'net_admin', 'net_raw', 'ipc_lock', 'ipc_owner', 'sys_module', 'sys_rawio', 'sys_chroot',
  'sys_ptrace', 'sys_pacct', 'sys_admin', 'sys_boot', 'sys_nice', 'sys_resource', 'sys_time', 'sys_tty_config', 'mknod', 'lease',
  'audit_write', 'audit_control', 'setfcap', 'mac_override', 'mac_admin', 'syslog', 'wake_alarm', 'block_suspend', 'audit_read',
  'perfmon', 'bpf', 'checkpoint_restore'];

/**
 * The bounding set of `pid` as a setpriv list ("-all,+chown,…"). Commands entered into the
 * container get no more: nsenter alone keeps the host's full set (CAP_SYS_TIME, CAP_SYS_MODULE…).
 */
export function boundingCaps(pid: number): string {
  const m = /^CapBnd:\s+([0-9a-f]+)$/m.exec(readOr(`/proc/${pid}/status`, ''));
  if (!m) throw new Error(`cannot read the capability bounding set of PID ${pid}`);
  const bits = BigInt(`0x${m[1]}`);
  return ['-all', ...CAPS.flatMap((name, i) => ((bits >> BigInt(i)) & 1n ? [`+${name}`] : []))].join(',');
}

// ---- cgroups --------------------------------------------------------------------------

const CGROUP2_MAGIC = 0x63677270;

/** The hierarchies nspawn needs a cgroup of its own in: the unified one (+ name=systemd on v1/hybrid). */
function cgroupRoots(): string[] {
  if (statfsSync('/sys/fs/cgroup').type === CGROUP2_MAGIC) return ['/sys/fs/cgroup'];
  return ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd'].filter((d) => existsSync(d));
}

/** Removes a cgroup tree bottom-up; returns the cgroups that still hold processes. */
function removeCgroup(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const busy: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) busy.push(...removeCgroup(join(dir, e.name)));
  }
  if (readOr(join(dir, 'cgroup.procs'), '').trim() !== '') return [...busy, dir];
  try {
    rmdirSync(dir);
  } catch {
    busy.push(dir);
  }
  return busy;
}

// ---- the container --------------------------------------------------------------------

let counter = 0;
let swept = false;

/**
 * Removes what a killed test runner left behind (its exit hook never ran): run and wrapper
 * dirs older than 2 minutes whose launcher / container is gone, and their empty cgroups. Its
 * containers themselves stop at their lifetime cap. bootSystemd calls it once per process.
 */
export function sweepStale(): void {
  for (const d of readdirSync(tmpdir()).filter((n) => n.startsWith('nixos-desync-systemd-'))) {
    const dir = join(tmpdir(), d);
    // Another runner's container may be starting right now (no pid file yet).
    if (Date.now() - statSync(dir).mtimeMs < 120_000) continue;
    const wrappers = d.startsWith('nixos-desync-systemd-bin-');
    const pid = Number(readOr(join(dir, wrappers ? 'leader' : 'launcher.pid'), '0'));
    if (pid > 0 && alive(pid) && comm(pid) === (wrappers ? 'systemd' : 'timeout')) continue;
    const name = wrappers ? '' : readOr(join(dir, 'name'), '').trim();
    if (name !== '') for (const r of cgroupRoots()) removeCgroup(join(r, `nixos-desync-test-${name}`));
    rmSync(dir, { recursive: true, force: true });
  }
}

function writeInto(root: string, path: string, spec: string | FileSpec): void {
  if (!path.startsWith('/')) throw new Error(`container paths are absolute: ${path}`);
  const f = typeof spec === 'string' ? { content: spec } : spec;
  const target = join(root, path);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, f.content);
  chmodSync(target, f.mode ?? 0o644);
}

function bindArg(b: Bind): string {
  const dst = b.dst ?? b.src;
  for (const p of [b.src, dst]) {
    if (!p.startsWith('/') || p.includes(':')) throw new Error(`bind paths must be absolute and without ':': ${p}`);
  }
  return `${b.readOnly ? '--bind-ro' : '--bind'}=${b.src}:${dst}`;
}

export async function bootSystemd(opts: BootOptions = {}): Promise<SystemdContainer> {
  const name = opts.name ?? `nd-test-${process.pid}-${++counter}`;
  if (!/^[A-Za-z0-9][A-Za-z0-9-]{0,39}$/.test(name)) throw new Error(`bad container name ${name}`);
  if (!swept) sweepStale();
  swept = true;
  const runDir = mkdtempSync(join(tmpdir(), `nixos-desync-systemd-${name}-`));
  writeFileSync(join(runDir, 'name'), `${name}\n`);
  const upper = join(runDir, 'upper');
  for (const d of ['upper', 'work', 'root']) mkdirSync(join(runDir, d));
  writeInto(upper, '/etc/hostname', `${name}\n`);
  if ((opts.dbus ?? 'broker') === 'broker') {
    mkdirSync(join(upper, 'etc/systemd/system'), { recursive: true });
    symlinkSync('/lib/systemd/system/dbus-broker.service', join(upper, 'etc/systemd/system/dbus.service'));
  }
  for (const [unit, text] of Object.entries(opts.units ?? {})) writeInto(upper, `/etc/systemd/system/${unit}`, text);
  for (const [path, spec] of Object.entries(opts.files ?? {})) writeInto(upper, path, spec);
  const nspawnArgs = [`--machine=${name}`, ...(opts.binds ?? []).map(bindArg), ...(opts.nspawnArgs ?? [])];
  const wrapperDirs: string[] = [];

  const inst: Instance = { launcher: null, nspawn: null, leader: null, runDir, cgroups: [] };
  live.add(inst);
  installExitHook();
  let bootMs = 0;
  let bootState = '';
  let allowDegraded = opts.allowDegraded ?? false;

  const leaderPid = (): number => {
    if (inst.leader === null || !alive(inst.leader)) throw new Error(`container ${name} is not running`);
    return inst.leader;
  };

  const exec = (argv: readonly string[], o: ExecOptions = {}): Promise<RunResult> => {
    const l = leaderPid();
    const env = Object.entries({ PATH: CONTAINER_PATH, LANG: 'C.UTF-8', TERM: 'dumb', SYSTEMD_PAGER: 'cat', SYSTEMD_COLORS: '0', ...o.env }).map(([k, v]) => `${k}=${v}`);
    return runCommand(
      ['setpriv', `--bounding-set=${boundingCaps(l)}`, '--inh-caps=-all', '--', 'nsenter', '-t', String(l), '-m', '-u', '-i', '-n', '-p', '-C', '--', 'env', '-i', ...env, ...argv],
      { timeoutMs: o.timeoutMs ?? 30_000, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
    );
  };

  const updateWrappers = (): void => {
    for (const d of wrapperDirs) {
      writeFileSync(join(d, 'leader'), `${inst.leader}\n`);
      writeFileSync(join(d, 'caps'), `${boundingCaps(inst.leader!)}\n`);
    }
  };

  async function start(): Promise<void> {
    const t0 = performance.now();
    const cg = `nixos-desync-test-${name}`;
    inst.cgroups = cgroupRoots().map((r) => join(r, cg));
    for (const c of inst.cgroups) mkdirSync(join(c, 'launcher'), { recursive: true });
    const log = join(runDir, 'console.log');
    writeFileSync(log, '');
    const fd = openSync(log, 'a');
    const launcher = spawn(LAUNCH, [runDir, ROOTFS, String(opts.lifetimeSeconds ?? 1800), ...inst.cgroups.map((c) => join(c, 'launcher')), '--', ...nspawnArgs], {
      stdio: ['ignore', fd, fd],
      detached: true,
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    closeSync(fd);
    inst.launcher = launcher;
    writeFileSync(join(runDir, 'launcher.pid'), `${launcher.pid ?? 0}\n`);
    let exited = false;
    launcher.on('exit', () => (exited = true));
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
    const fail = async (why: string): Promise<never> => {
      const tail = readOr(log, '').split('\n').slice(-20).join('\n');
      await stop(false);
      throw new Error(`container ${name}: ${why}\n${tail}`);
    };
    while (inst.leader === null) {
      if (exited) return fail('systemd-nspawn exited during the boot');
      if (Date.now() > deadline) return fail('no container PID 1 in time');
      if (inst.nspawn === null && launcher.pid !== undefined) inst.nspawn = children(launcher.pid).find((p) => comm(p) === 'systemd-nspawn') ?? null;
      if (inst.nspawn !== null) inst.leader = findLeader(inst.nspawn);
      if (inst.leader === null) await sleep(20);
    }
    // systemctl needs the manager's private socket, which appears a moment after PID 1 starts.
    while (!existsSync(`/proc/${inst.leader}/root/run/systemd/private`)) {
      if (exited || Date.now() > deadline) return fail('the manager never opened /run/systemd/private');
      await sleep(20);
    }
    const r = await exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: Math.max(1000, deadline - Date.now()) });
    bootState = r.stdout.trim();
    bootMs = performance.now() - t0;
    if (bootState !== 'running' && !(bootState === 'degraded' && allowDegraded)) {
      const failed = await exec(['systemctl', '--no-legend', '--plain', 'list-units', '--failed']).catch(() => null);
      return fail(`system state '${bootState || r.stderr.trim()}' after the boot (want running); failed units:\n${failed?.stdout ?? '?'}`);
    }
    updateWrappers();
  }

  async function stop(keep: boolean): Promise<void> {
    const { nspawn, leader, launcher } = inst;
    if (nspawn !== null && alive(nspawn) && comm(nspawn) === 'systemd-nspawn') {
      tryKill(nspawn, 'SIGTERM'); // nspawn → SIGRTMIN+3 to PID 1: an orderly poweroff
      if (!(await waitGone([nspawn, leader], 20_000))) {
        if (leader !== null) tryKill(leader, 'SIGKILL'); // PID 1 of its namespace: takes every process in it along
        if (!(await waitGone([nspawn], 5000))) tryKill(nspawn, 'SIGKILL');
      }
    } else if (leader !== null && alive(leader)) {
      tryKill(leader, 'SIGKILL');
    }
    if (launcher !== null && launcher.exitCode === null && launcher.signalCode === null) {
      const gone = new Promise<void>((resolve) => launcher.once('exit', () => resolve()));
      const timer = setTimeout(() => tryKill(launcher.pid!, 'SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    }
    await waitGone([leader, nspawn], 5000);
    const busy = inst.cgroups.flatMap(removeCgroup);
    Object.assign(inst, { launcher: null, nspawn: null, leader: null });
    if (!keep) {
      rmSync(runDir, { recursive: true, force: true });
      for (const d of wrapperDirs) rmSync(d, { recursive: true, force: true });
      live.delete(inst);
    }
    if (busy.length > 0) throw new Error(`container ${name}: cgroups still hold processes after the stop: ${busy.join(', ')}`);
  }

  await start();

  const container: SystemdContainer = {
    name,
    runDir,
    get leader() {
      return leaderPid();
    },
    get bootMs() {
      return bootMs;
    },
    get bootState() {
      return bootState;
    },
    get root() {
      return `/proc/${leaderPid()}/root`;
    },
    exec,
    systemctl: (...args) => exec(['systemctl', ...args]),
    writeFile(path, content, mode) {
      writeInto(`/proc/${leaderPid()}/root`, path, { content, mode });
    },
    async installUnits(units) {
      for (const [unit, text] of Object.entries(units)) container.writeFile(`/etc/systemd/system/${unit}`, text);
      const r = await exec(['systemctl', 'daemon-reload']);
      if (r.exitCode !== 0) throw new Error(`daemon-reload failed: ${r.stderr}`);
    },
    wrappers(names = ['systemctl', 'journalctl']) {
      const d = mkdtempSync(join(tmpdir(), `nixos-desync-systemd-bin-${name}-`));
      for (const n of names) symlinkSync(ENTER, join(d, n));
      wrapperDirs.push(d);
      updateWrappers();
      return d;
    },
    async reboot(o = {}) {
      allowDegraded = o.allowDegraded ?? opts.allowDegraded ?? false;
      await stop(true);
      await start();
    },
    async stop() {
      if (!live.has(inst)) return;
      await stop(false);
    },
  };
  return container;
}
