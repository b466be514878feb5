// The exporter's in-memory model of the host, kept current by watchers: a scrape only reads
// it, so its cost does not depend on the number of generations or on the disk. As
// node_exporter's collectors, each source is one small reader (./sources/: state, profiles,
// run, PR files, flake lock) behind one interface; this file only schedules their reads and
// publishes their snapshots. Events mark a source dirty; bursts are coalesced (debounce with
// a max wait) and one refresh at a time re-reads the dirty sources. Watcher errors, lost
// roots and a slow safety-net timer trigger full re-reads, so numbers are never stale forever;
// what no event reports (the state directory's trust after a chmod) is re-checked per scrape.
// One consistent state per scrape: while a live upgrade run holds `<stateDir>/lock`, what the
// loop writes (state, profiles, the running system) is not applied — a run writes its files in
// several steps — and once it released the lock, every dirty source is re-read and the new
// snapshots are swapped in together, in one synchronous step.
import type { Config } from '../config/schema.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { HostModel, HostModelOptions, SystemSnapshot } from './host-model.js';
import { createRootWatcher, type RootWatcher } from './root-watcher.js';
import { createFlakeSource, type FlakeSnapshot } from './sources/flake.js';
import { createPrSource, type PrSnapshot } from './sources/pr.js';
import { createProfilesSource } from './sources/profiles.js';
import { createRunSource } from './sources/run.js';
import type { Reading, Source, SourceName } from './sources/source.js';
import { createStateSource, type StateSnapshot } from './sources/state.js';
import { exporterBootInfo, runLockHolder, type LockHolder } from './state-trust.js';

export type { FlakeSnapshot, HostModel, HostModelOptions, PrSnapshot, SourceName, StateSnapshot, SystemSnapshot };

/** Sources the upgrade loop writes during a run: held back while it holds the lock. */
const LOOP_SOURCES: ReadonlySet<SourceName> = new Set(['state', 'profiles', 'run', 'flake']);

interface Entry {
  source: Source<unknown>;
  publish(snapshot: unknown): void;
  watcher?: RootWatcher;
}

export function createHostModel(config: Config, opts: HostModelOptions): HostModel {
  const log = opts.logger;
  const debounceMs = opts.debounceMs ?? 30;
  const maxWaitMs = opts.maxWaitMs ?? 200;
  const lockPollMs = opts.lockPollMs ?? 1000;
  // This boot's identity does not change while we run: read once, not on every watcher event.
  const boot = exporterBootInfo();

  // ---- the sources and what they publish --------------------------------------------------
  const stateSource = createStateSource(config, opts.recentRuns ?? 10);
  const profilesSource = createProfilesSource(config);
  const runSource = createRunSource(config);
  let state: StateSnapshot = { ...stateSource.initial, runHolder: null };
  let system: SystemSnapshot = { ...profilesSource.initial, ...runSource.initial };
  let pr: PrSnapshot | null = null;
  let flake: FlakeSnapshot | null = null;
  const entries = new Map<SourceName, Entry>();
  const add = <S>(source: Source<S>, publish: (s: S) => void): void => {
    entries.set(source.name, { source: source as Source<unknown>, publish: publish as (s: unknown) => void });
  };
  add(stateSource, (s) => (state = { ...s, runHolder: state.runHolder }));
  add(profilesSource, (s) => (system = { ...system, ...s }));
  add(runSource, (s) => (system = { ...system, ...s }));
  if (config.exporter.prDesyncDir) {
    const source = createPrSource(config.exporter.prDesyncDir, opts.storeDir);
    pr = source.initial;
    add(source, (s) => (pr = s));
  }
  if (config.exporter.flakeLock) {
    const source = createFlakeSource(config.exporter.flakeLock);
    flake = source.initial;
    add(source, (s) => (flake = s));
  }
  const names = [...entries.keys()];

  // ---- scheduling ---------------------------------------------------------------------------
  // Sources read at least once: the first read never waits for a run to end.
  const loaded = new Set<SourceName>();
  let deferredByLock = false;
  let lockPoll: NodeJS.Timeout | null = null;
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

  /** Reads one source; the returned function publishes the reading (and logs its error). */
  async function refresh(name: SourceName, isFull: boolean): Promise<() => void> {
    const e = entries.get(name)!;
    // One stat: a root deleted or replaced without a usable event gets a fresh watch.
    await e.watcher?.verify();
    const commit = await e.source.read(isFull);
    return () => {
      const r: Reading<unknown> = commit();
      e.publish(r.snapshot);
      noteError(name, r.error);
    };
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

  // ---- watchers -------------------------------------------------------------------------------
  for (const e of entries.values()) {
    const s = e.source;
    e.watcher = createRootWatcher({
      logger: log, retryMs: opts.retryMs, root: s.root, accept: s.accept, track: s.track,
      onEvent: (_ev, name) => {
        s.onEvent?.(name);
        mark(s.name);
      },
      onRescan: () => mark(s.name, true),
    });
  }
  const watchers = [...entries.values()].map((e) => e.watcher!);

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

  async function rescanAll(reason: string): Promise<void> {
    stats.rescans += 1;
    log.debug('full re-read', { reason });
    await Promise.all(watchers.map((w) => w.verify()));
    for (const s of names) mark(s, true);
    await settled();
  }

  // One lstat per trusted path, shared by concurrent scrapes.
  let rechecking: Promise<void> | null = null;
  function recheck(): Promise<void> {
    rechecking ??= (async () => {
      // A run that died holding the lock (kill -9) announces nothing until the lock poll: never shown in progress.
      const holder = state.runHolder;
      const holderGone = holder !== null && (await runLockHolder(config.stateDir, boot))?.pid !== holder.pid;
      // While a live run holds the lock its sources are held back anyway: nothing to re-check for them.
      const held = (n: SourceName): boolean => holder !== null && !holderGone && LOOP_SOURCES.has(n);
      const stale = await Promise.all(names.map(async (n) => loaded.has(n) && !held(n) && (await entries.get(n)!.source.stale?.()) === true));
      names.forEach((n, i) => stale[i] && mark(n));
      if (holderGone) mark('state');
      if (holderGone || stale.includes(true)) await settled();
    })().finally(() => {
      rechecking = null;
    });
    return rechecking;
  }

  // The first full read does not wait for the watchers: chokidar's initial scan of a profiles
  // dir with thousands of generation links takes ~0.7 s. Each watcher asks for one more full
  // re-read once it is ready, which covers any change made before it was.
  const ready = (async () => {
    for (const s of names) mark(s, true);
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
