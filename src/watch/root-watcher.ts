// One watched directory (depth 0, symlinks not followed) that survives its own deletion:
// a missing or deleted root is re-checked with one stat per retry until it reappears, and
// every (re)start or watcher error asks the owner for a full re-read of that source.
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';

export type WatchEvent = 'add' | 'addDir' | 'change' | 'unlink' | 'unlinkDir';

export interface RootWatcherOptions {
  root: string;
  /** Names directly under root that matter; everything else is not even watched. */
  accept: (name: string) => boolean;
  /**
   * Accepted names chokidar should track itself (default: all). Others are still reported,
   * from the directory's raw inotify events, without chokidar stat-ing each of them at start
   * (5,000 generation links would cost ~1 s).
   */
  track?: (name: string) => boolean;
  onEvent: (event: WatchEvent, name: string) => void;
  /** The watcher (re)started, failed or lost its root: re-read everything from scratch. */
  onRescan: (reason: string) => void;
  logger: Logger;
  /** Delay between checks for a missing root and before restarting after an error. */
  retryMs?: number;
}

export interface RootWatcher {
  readonly root: string;
  /** Resolves once the first watch is ready (or the root was found missing). */
  ready: Promise<void>;
  /** True while chokidar watches the root. */
  readonly watching: boolean;
  /** Restarts the watch when the root was replaced behind our back (safety net). */
  verify(): Promise<void>;
  close(): Promise<void>;
}

export function createRootWatcher(opts: RootWatcherOptions): RootWatcher {
  const { root, logger: log } = opts;
  const retryMs = opts.retryMs ?? 250;
  let watcher: FSWatcher | null = null;
  let rootIno: number | null = null;
  let closed = false;
  let retryTimer: NodeJS.Timeout | null = null;
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));

  const track = opts.track ?? opts.accept;
  const ignored = (p: string): boolean => p !== root && (dirname(p) !== root || !opts.accept(basename(p)) || !track(basename(p)));

  async function stop(): Promise<void> {
    const w = watcher;
    watcher = null;
    rootIno = null;
    if (w) await w.close().catch(() => undefined);
  }

  function retryLater(): void {
    if (closed || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      void start();
    }, retryMs);
    retryTimer.unref?.();
  }

  async function start(): Promise<void> {
    if (closed || watcher) return;
    const st = await stat(root).catch(() => null);
    if (closed) return;
    if (!st?.isDirectory()) {
      opts.onRescan('root missing');
      markReady();
      retryLater();
      return;
    }
    rootIno = st.ino;
    const w = watch(root, { depth: 0, followSymlinks: false, ignoreInitial: true, ignored, persistent: true });
    watcher = w;
    w.on('all', (event, path) => {
      if (watcher !== w) return;
      if (path === root) {
        if (event === 'unlinkDir') {
          log.warn('watched directory disappeared; waiting for it to come back', { root });
          void stop().then(() => {
            opts.onRescan('root removed');
            retryLater();
          });
        }
        return;
      }
      if (dirname(path) === root) opts.onEvent(event as WatchEvent, basename(path));
    });
    // chokidar misses a symlink replaced by rename (the `system`/`pins` swap): the raw
    // inotify event still names the entry, so it is passed on as a change to re-check.
    w.on('raw', (_ev, p, details) => {
      if (watcher !== w || (details as { watchedPath?: string } | undefined)?.watchedPath !== root || !p) return;
      const name = basename(p);
      if (opts.accept(name)) opts.onEvent('change', name);
    });
    w.on('error', (err: unknown) => {
      if (watcher !== w) return;
      log.warn('watcher error; restarting it and re-reading everything', { root, error: errorMessage(err) });
      void stop().then(() => {
        opts.onRescan('watch error');
        retryLater();
      });
    });
    w.on('ready', () => {
      if (watcher !== w) return;
      opts.onRescan('watch started');
      markReady();
    });
  }

  void start();

  return {
    root,
    ready,
    get watching() {
      return watcher !== null;
    },
    async verify() {
      if (closed) return;
      const st = await stat(root).catch(() => null);
      const same = st?.isDirectory() === true && st.ino === rootIno;
      if (watcher && !same) {
        log.warn('watched directory was replaced; restarting its watch', { root });
        await stop();
        opts.onRescan('root replaced');
        void start();
      } else if (!watcher && !retryTimer && st?.isDirectory()) {
        void start();
      }
    },
    async close() {
      closed = true;
      if (retryTimer) clearTimeout(retryTimer);
      retryTimer = null;
      markReady();
      await stop();
    },
  };
}
