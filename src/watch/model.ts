// The exporter's in-memory model of the host, kept current by watchers: a scrape only reads
// it, so its cost does not depend on the number of generations or on the disk. Events mark
// a source dirty; bursts are coalesced (debounce with a max wait) and each source is re-read
// by one refresh at a time. Watcher errors, lost roots and a slow safety-net timer trigger
// full re-reads, so numbers are never stale forever.
// One consistent state per scrape: while a live upgrade run holds `<stateDir>/lock`, what the
// loop writes (state, profiles, the running system) is not applied — a run writes its files in
// several steps — and once it released the lock, every dirty source is re-read and the new
// snapshots are swapped in together, in one synchronous step.
import { lstat, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Config } from '../config/schema.js';
import { readToplevelSources } from '../system/generations.js';
import { emptyState, type SystemSources, type Journal, type MachineState, type RunRecord } from '../state/model.js';
import { createStateStore, type StateProblem } from '../state/store.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { readFlakeLock, type LockedInput } from './flake-lock.js';
import { readPrDesyncFile, type PrDesync } from './pr-desync.js';
import { exporterBootInfo, runLockHolder, stateTrustProblem, type LockHolder } from './state-trust.js';
import { createRootWatcher, type RootWatcher } from './root-watcher.js';
import { GENERATION_LINK_RE, readActivationPending, readCurrentGeneration, readRebootRequired, readRunningNixpkgs, type NixpkgsVersion } from './system-info.js';

export type SourceName = 'state' | 'profiles' | 'run' | 'pr' | 'flake';
const SOURCES: readonly SourceName[] = ['state', 'profiles', 'run', 'pr', 'flake'];

export interface StateSnapshot {
  state: MachineState;
  /** state.json missing is fine (fresh host); corrupt/unreadable is a problem. */
  stateProblem: StateProblem | null;
  stateMissing: boolean;
  recentRuns: RunRecord[];
  historyProblem: StateProblem | null;
  journal: Journal | null;
  journalProblem: StateProblem | null;
  corruptFiles: string[];
  /** The state directory itself cannot be read. */
  dirError: string | null;
  /**
   * Why the state directory cannot be trusted (a symlink, a foreign owner, group/world-
   * writable: the loop refuses to run); nothing read from it is exported then.
   */
  untrusted: string | null;
  /**
   * The last state read from a valid state.json in a trusted directory: while state.json is
   * corrupt or the directory untrusted, the breaches it recorded stay visible.
   */
  lastGood: MachineState | null;
  /** The live upgrade run holding the lock, if any (its files are applied once it ends). */
  runHolder: LockHolder | null;
}

export interface SystemSnapshot {
  generation: number | null;
  generationTimestamp: Date | null;
  generations: number;
  rebootRequired: boolean;
  activationPending: boolean;
  /** The running system's nixpkgs from its nixos-version (null: not NixOS, or no version). */
  nixpkgs: NixpkgsVersion | null;
  /** The running toplevel (`<runDir>/current-system`), and the sources written into it by the module (null: none). */
  currentToplevel: string | null;
  toplevelSources: SystemSources | null;
  profilesError: string | null;
  runError: string | null;
}

export interface PrSnapshot {
  dir: string;
  desyncs: PrDesync[];
  /** File name → why it could not be read. */
  errors: Record<string, string>;
  dirError: string | null;
}

/** exporter.flakeLock: the inputs it locks (watched like every other source). */
export interface FlakeSnapshot {
  file: string;
  inputs: LockedInput[];
  error: string | null;
}

export interface HostModel {
  readonly state: StateSnapshot;
  readonly system: SystemSnapshot;
  readonly pr: PrSnapshot | null;
  readonly flake: FlakeSnapshot | null;
  /** Resolves once every source was read once (watchers may still be starting). */
  ready: Promise<void>;
  /** Resolves once every watcher is watching (tests). */
  watching: Promise<void>;
  /** Re-reads every source now (what the safety net and watcher errors do). */
  rescanAll(reason: string): Promise<void>;
  /** Resolves when no refresh is pending or running (tests). */
  settled(): Promise<void>;
  /**
   * Re-checks, before a scrape, what no file event reports: the state directory's trust (a
   * chmod or chown of the watched directory delivers none). A change is applied before it resolves.
   */
  recheck(): Promise<void>;
  readonly stats: { refreshes: Record<SourceName, number>; rescans: number };
  close(): Promise<void>;
}

export interface HostModelOptions {
  logger: Logger;
  /** Quiet time before a burst of events is applied. */
  debounceMs?: number;
  /** A continuous burst is still applied at least this often. */
  maxWaitMs?: number;
  /** Safety-net full re-read interval (0 disables). */
  rescanIntervalMs?: number;
  retryMs?: number;
  recentRuns?: number;
  storeDir?: string;
  /** While a run holds the lock, how often to check that its process is still alive. */
  lockPollMs?: number;
}

const STATE_NAMES = new Set(['state.json', 'history.json', 'journal.json', 'pins', 'lock', 'sets']);
/** Sources the upgrade loop writes during a run: held back while it holds the lock. */
const LOOP_SOURCES: ReadonlySet<SourceName> = new Set(['state', 'profiles', 'run', 'flake']);
const acceptState = (n: string): boolean => STATE_NAMES.has(n) || (n.includes('.corrupt-') && !n.startsWith('.'));
const acceptProfiles = (n: string): boolean => n === 'system' || GENERATION_LINK_RE.test(n);
const acceptRun = (n: string): boolean => n === 'current-system' || n === 'booted-system';
const acceptPr = (n: string): boolean => n.endsWith('.nix') && !n.startsWith('.');

/** Why `dir` cannot be read as a directory (null when it can); `missing` when it does not exist. */
async function dirStatus(dir: string): Promise<{ error: string | null; missing: boolean }> {
  const st = await stat(dir).catch((e: unknown) => e as NodeJS.ErrnoException);
  if (st instanceof Error) return { error: `${dir}: ${errorMessage(st)}`, missing: st.code === 'ENOENT' };
  return { error: st.isDirectory() ? null : `${dir}: not a directory`, missing: false };
}

async function dirProblem(dir: string): Promise<string | null> {
  return (await dirStatus(dir)).error;
}

export function createHostModel(config: Config, opts: HostModelOptions): HostModel {
  const log = opts.logger;
  const debounceMs = opts.debounceMs ?? 30;
  const maxWaitMs = opts.maxWaitMs ?? 200;
  const store = createStateStore(config.stateDir);
  const recentLimit = opts.recentRuns ?? 10;

  let state: StateSnapshot = {
    state: emptyState(), stateProblem: null, stateMissing: true, recentRuns: [], historyProblem: null,
    journal: null, journalProblem: null, corruptFiles: [], dirError: 'not read yet', untrusted: null, lastGood: null, runHolder: null,
  };
  const lockPollMs = opts.lockPollMs ?? 1000;
  // This boot's identity does not change while we run: read once, not on every watcher event.
  const boot = exporterBootInfo();
  // Sources read at least once: the first read never waits for a run to end.
  const loaded = new Set<SourceName>();
  let deferredByLock = false;
  let lockPoll: NodeJS.Timeout | null = null;
  let system: SystemSnapshot = {
    generation: null, generationTimestamp: null, generations: 0, rebootRequired: false, activationPending: false, nixpkgs: null, currentToplevel: null, toplevelSources: null,
    profilesError: 'not read yet', runError: 'not read yet',
  };
  let pr: PrSnapshot | null = config.exporter.prDesyncDir
    ? { dir: config.exporter.prDesyncDir, desyncs: [], errors: {}, dirError: 'not read yet' }
    : null;

  let flake: FlakeSnapshot | null = config.exporter.flakeLock
    ? { file: config.exporter.flakeLock, inputs: [], error: 'not read yet' }
    : null;

  // Generations are counted incrementally: each event names one link, which is re-checked
  // with one lstat; a full re-read (readdir) replaces the set.
  const generations = new Set<number>();
  const genTouched = new Set<string>();
  // PR files are re-read one by one as they change.
  const prFiles = new Map<string, PrDesync | { error: string }>();
  const prDirty = new Set<string>();

  let stateDirSeen = false;
  const dirty = new Set<SourceName>();
  const full = new Set<SourceName>();
  const stats = { refreshes: { state: 0, profiles: 0, run: 0, pr: 0, flake: 0 } as Record<SourceName, number>, rescans: 0 };
  let timer: NodeJS.Timeout | null = null;
  let firstDirtyAt = 0;
  let running: Promise<void> | null = null;
  let closed = false;
  const lastErrors = new Map<string, string | null>();

  /** Logs a source's error once when it appears and once when it clears (no log per event). */
  function noteError(key: string, err: string | null): void {
    if ((lastErrors.get(key) ?? null) === err) return;
    lastErrors.set(key, err);
    if (err) log.warn('source unreadable', { source: key, error: err });
    else if (lastErrors.size > 0) log.info('source readable again', { source: key });
  }

  function mark(src: SourceName, isFull = false): void {
    if (closed) return;
    dirty.add(src);
    if (isFull) full.add(src);
    const now = Date.now();
    if (timer === null) firstDirtyAt = now;
    const wait = Math.max(0, Math.min(debounceMs, firstDirtyAt + maxWaitMs - now));
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      void flush();
    }, wait);
  }

  function setHolder(holder: LockHolder | null): void {
    const cur = state.runHolder;
    if (cur?.pid === holder?.pid && cur?.startedAt === holder?.startedAt) return;
    state = { ...state, runHolder: holder };
  }

  function flush(): Promise<void> {
    if (running) return running;
    const p: Promise<void> = (async () => {
      let rereads = 0;
      deferredByLock = false;
      while (dirty.size > 0 && !closed) {
        const holder = await runLockHolder(config.stateDir, boot);
        // A run starting shows at once; its end shows together with what it wrote (below).
        if (holder !== null) setHolder(holder);
        const srcs = [...dirty].filter((s) => holder === null || !LOOP_SOURCES.has(s) || !loaded.has(s));
        if (srcs.length === 0) {
          // Everything left is the run's: wait for the lock to go (its unlink is an event of
          // the state source), checking now and then that its owner did not die holding it.
          deferredByLock = true;
          if (lockPoll === null && !closed) {
            lockPoll = setTimeout(() => {
              lockPoll = null;
              void flush();
            }, lockPollMs);
            lockPoll.unref?.();
          }
          break;
        }
        const fulls = new Set(srcs.filter((s) => full.has(s)));
        for (const s of srcs) {
          dirty.delete(s);
          full.delete(s);
        }
        const applies: Array<() => void> = [];
        for (const s of srcs) {
          stats.refreshes[s] += 1;
          try {
            applies.push(await refresh(s, fulls.has(s)));
          } catch (err) {
            noteError(s, `refresh failed: ${errorMessage(err)}`);
          }
        }
        // A run that took the lock or wrote state files while we read may have been caught
        // half-way: read again rather than show that (bounded, so a busy disk cannot starve us).
        if (srcs.some((s) => LOOP_SOURCES.has(s)) && rereads < 5) {
          const after = await runLockHolder(config.stateDir, boot);
          if ((after !== null && srcs.every((s) => loaded.has(s))) || dirty.has('state')) {
            rereads += 1;
            if (after !== null) setHolder(after);
            for (const s of srcs) {
              dirty.add(s);
              if (fulls.has(s)) full.add(s);
            }
            continue;
          }
        }
        // Every snapshot of this refresh becomes visible at once: a scrape never sees half of it.
        for (const a of applies) a();
        if (holder === null) setHolder(null);
        for (const s of srcs) loaded.add(s);
      }
    })().finally(() => {
      // `.finally` runs after the assignment below, even when there was nothing to do.
      if (running === p) running = null;
    });
    running = p;
    return p;
  }

  async function refresh(src: SourceName, isFull: boolean): Promise<() => void> {
    // One stat: a root deleted or replaced without a usable event gets a fresh watch.
    await watcherOf.get(src)?.verify();
    if (src === 'state') return refreshState();
    if (src === 'profiles') return refreshProfiles(isFull);
    if (src === 'run') return refreshRun();
    if (src === 'flake') return refreshFlake();
    return refreshPr(isFull);
  }

  async function refreshState(): Promise<() => void> {
    // A state directory that does not exist yet is a host where the loop never ran (monitor
    // mode): nothing to report, nothing failing. One that is unreadable or a file is a problem.
    // A state directory that vanished after this exporter saw it is a problem (its counters
    // and breach flags would read as reset), not a fresh host.
    const dir = await dirStatus(config.stateDir);
    const dirError = dir.missing && !stateDirSeen ? null : dir.error;
    if (!dir.error) stateDirSeen = true;
    const blank = { state: emptyState(), stateProblem: null, stateMissing: true, recentRuns: [], historyProblem: null, journal: null, journalProblem: null, corruptFiles: [] };
    if (dir.error) {
      return () => {
        state = { ...blank, dirError, untrusted: null, lastGood: state.lastGood, runHolder: state.runHolder };
        noteError('state', dirError);
      };
    }
    const untrusted = await stateTrustProblem(config.stateDir);
    if (untrusted) {
      return () => {
        state = { ...blank, dirError: null, untrusted, lastGood: state.lastGood, runHolder: state.runHolder };
        noteError('state', untrusted);
      };
    }
    const [st, hist, journal, corrupt] = await Promise.all([
      store.readState({ repair: false }),
      store.readHistory({ repair: false }),
      store.readJournal({ repair: false }),
      store.corruptFiles(),
    ]);
    const stateMissing = st.problems.length === 0 && !(await stat(store.paths.state).then(() => true, () => false));
    return () => {
      state = {
        state: st.value,
        stateProblem: st.problems[0] ?? null,
        stateMissing,
        recentRuns: hist.value.runs.slice(-recentLimit).reverse(),
        historyProblem: hist.problems[0] ?? null,
        journal: journal.value,
        journalProblem: journal.problems[0] ?? null,
        corruptFiles: corrupt,
        dirError: null,
        untrusted: null,
        lastGood: st.problems.length === 0 && !stateMissing ? st.value : state.lastGood,
        runHolder: state.runHolder,
      };
      noteError('state', state.stateProblem?.message ?? state.historyProblem?.message ?? state.journalProblem?.message ?? null);
    };
  }

  async function refreshProfiles(isFull: boolean): Promise<() => void> {
    const dir = config.profilesDir;
    const dirError = await dirProblem(dir);
    if (isFull || dirError) {
      const names = dirError ? [] : await readdir(dir).catch(() => [] as string[]);
      generations.clear();
      for (const n of names) {
        const m = GENERATION_LINK_RE.exec(n);
        if (m) generations.add(Number(m[1]));
      }
    }
    // Links touched before or during the readdir are re-checked after it, so none is lost.
    const touched = [...genTouched];
    genTouched.clear();
    await Promise.all(touched.map(async (name) => {
      const exists = await lstat(join(dir, name)).then(() => true, () => false);
      const n = Number(GENERATION_LINK_RE.exec(name)![1]);
      if (exists) generations.add(n);
      else generations.delete(n);
    }));
    const [gen, pending] = await Promise.all([readCurrentGeneration(dir), readActivationPending(dir, config.runDir)]);
    const count = generations.size;
    return () => {
      system = { ...system, generation: gen.generation, generationTimestamp: gen.timestamp, generations: count, activationPending: pending, profilesError: dirError };
      noteError('profiles', dirError);
    };
  }

  async function refreshRun(): Promise<() => void> {
    const runError = await dirProblem(config.runDir);
    const [reboot, pending, nixpkgs, currentToplevel] = await Promise.all([
      readRebootRequired(config.runDir), readActivationPending(config.profilesDir, config.runDir), readRunningNixpkgs(config.runDir),
      realpath(join(config.runDir, 'current-system')).catch(() => null),
    ]);
    const toplevelSources = currentToplevel === null ? null : await readToplevelSources(currentToplevel);
    return () => {
      system = { ...system, rebootRequired: reboot, activationPending: pending, nixpkgs, currentToplevel, toplevelSources, runError };
      noteError('run', runError);
    };
  }

  async function refreshPr(isFull: boolean): Promise<() => void> {
    if (!pr) return () => undefined;
    const dir = pr.dir;
    const dirError = await dirProblem(dir);
    let names: string[];
    if (isFull || dirError) {
      names = dirError ? [] : (await readdir(dir).catch(() => [] as string[])).filter(acceptPr);
      prFiles.clear();
      prDirty.clear();
    } else {
      names = [...prDirty];
      prDirty.clear();
    }
    for (const file of names) {
      const name = file.slice(0, -'.nix'.length);
      try {
        prFiles.set(file, await readPrDesyncFile(join(dir, file), name, opts.storeDir));
      } catch (err) {
        const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
        if (code === 'ENOENT') prFiles.delete(file);
        else prFiles.set(file, { error: errorMessage(err) });
      }
    }
    const desyncs: PrDesync[] = [];
    const errors: Record<string, string> = {};
    for (const [file, v] of [...prFiles].sort(([a], [b]) => a.localeCompare(b))) {
      if ('error' in v) errors[file] = v.error;
      else desyncs.push(v);
    }
    return () => {
      pr = { dir, desyncs, errors, dirError };
      noteError('pr', dirError ?? (Object.values(errors)[0] ?? null));
    };
  }

  async function refreshFlake(): Promise<() => void> {
    if (!flake) return () => undefined;
    const file = flake.file;
    let next: NonNullable<typeof flake>;
    try {
      next = { file, inputs: await readFlakeLock(file), error: null };
    } catch (err) {
      // The last good inputs are not kept: an age read from a file that is gone would lie.
      next = { file, inputs: [], error: errorMessage(err) };
    }
    return () => {
      flake = next;
      noteError('flake', next.error);
    };
  }

  const watchers: RootWatcher[] = [];
  const watcherOf = new Map<SourceName, RootWatcher>();
  const common = { logger: log, retryMs: opts.retryMs };
  const watch = (src: SourceName, o: Parameters<typeof createRootWatcher>[0]): RootWatcher => {
    const w = createRootWatcher(o);
    watcherOf.set(src, w);
    return w;
  };
  watchers.push(watch('state', {
    ...common, root: config.stateDir, accept: acceptState,
    onEvent: () => mark('state'),
    onRescan: () => mark('state', true),
  }));
  watchers.push(watch('profiles', {
    ...common, root: config.profilesDir, accept: acceptProfiles,
    // Generation links come from raw events; chokidar itself only tracks `system`.
    track: (n) => n === 'system',
    onEvent: (_ev, name) => {
      if (GENERATION_LINK_RE.test(name)) genTouched.add(name);
      mark('profiles');
    },
    onRescan: () => mark('profiles', true),
  }));
  watchers.push(watch('run', {
    ...common, root: config.runDir, accept: acceptRun,
    onEvent: () => mark('run'),
    onRescan: () => mark('run', true),
  }));
  if (pr) {
    watchers.push(watch('pr', {
      ...common, root: pr.dir, accept: acceptPr,
      onEvent: (_ev, name) => {
        prDirty.add(name);
        mark('pr');
      },
      onRescan: () => mark('pr', true),
    }));
  }

  if (flake) {
    const name = basename(flake.file);
    watchers.push(watch('flake', {
      ...common, root: dirname(flake.file), accept: (n) => n === name,
      onEvent: () => mark('flake'),
      onRescan: () => mark('flake', true),
    }));
  }

  async function settled(): Promise<void> {
    // Sources held back for a running upgrade count as settled: they apply when it ends.
    while (!closed && (timer !== null || running !== null || (dirty.size > 0 && !deferredByLock))) {
      if (running) await running;
      else if (timer) {
        clearTimeout(timer);
        timer = null;
        await flush();
      } else await flush();
    }
  }

  // One stat per trusted path (stateTrustProblem), shared by concurrent scrapes.
  let rechecking: Promise<void> | null = null;
  function recheck(): Promise<void> {
    rechecking ??= (async () => {
      if (!loaded.has('state') || state.dirError !== null) return;
      const untrusted = await stateTrustProblem(config.stateDir);
      if (untrusted === state.untrusted) return;
      mark('state');
      await settled();
    })().finally(() => {
      rechecking = null;
    });
    return rechecking;
  }

  async function rescanAll(reason: string): Promise<void> {
    stats.rescans += 1;
    log.debug('full re-read', { reason });
    await Promise.all(watchers.map((w) => w.verify()));
    for (const s of SOURCES) mark(s, true);
    await settled();
  }

  // The first full read does not wait for the watchers: chokidar's initial scan of a profiles
  // dir with thousands of generation links takes ~0.7 s. Each watcher asks for one more full
  // re-read once it is ready, which covers any change made before it was.
  const ready = (async () => {
    for (const s of SOURCES) mark(s, true);
    await settled();
  })();

  let safety: NodeJS.Timeout | null = null;
  if ((opts.rescanIntervalMs ?? 60_000) > 0) {
    safety = setInterval(() => void rescanAll('periodic safety net'), opts.rescanIntervalMs ?? 60_000);
    safety.unref();
  }

  return {
    get state() {
      return state;
    },
    get system() {
      return system;
    },
    get pr() {
      return pr;
    },
    get flake() {
      return flake;
    },
    ready,
    watching: Promise.all(watchers.map((w) => w.ready)).then(() => settled()),
    rescanAll,
    settled,
    recheck,
    stats,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      if (lockPoll) clearTimeout(lockPoll);
      if (safety) clearInterval(safety);
      await Promise.all(watchers.map((w) => w.close()));
      if (running) await running.catch(() => undefined);
    },
  };
}
