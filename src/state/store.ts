// Files under <stateDir>. Pin sets live in `sets/<id>/pins/` (GC roots in `sets/<id>/roots/`);
// `pins` is a symlink to the current one and is swapped with one atomic rename, so readers always see one complete set.
import { lstat, mkdir, readdir, readFile, readlink, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ZodType } from 'zod';
import { DesyncError, errorMessage } from '../util/errors.js';
import { ensureDir, fsyncDir, removeStaleTemps, replaceSymlink, writeFileAtomic } from '../util/fsatomic.js';
import {
  emptyState,
  migrateState,
  historySchema,
  journalSchema,
  stateSchema,
  HISTORY_VERSION,
  JOURNAL_VERSION,
  STATE_VERSION,
  type History,
  type Journal,
  type MachineState,
  type Pin,
  type RunRecord,
} from './model.js';
import { parsePinFile, renderPinFile } from './pinfile.js';
import { checkSafeDir, checkStateDir } from './safe-dir.js';

export interface StateProblem {
  file: string;
  message: string;
  /** Where the corrupt file was moved (only when reading with `repair`). */
  movedTo?: string;
}

export interface ReadResult<T> {
  value: T;
  problems: StateProblem[];
}

export const SET_ID_RE = /^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4,8}$/;
export const DEFAULT_HISTORY_LIMIT = 200;

export function createStateStore(stateDir: string) {
  const p = {
    state: join(stateDir, 'state.json'),
    history: join(stateDir, 'history.json'),
    journal: join(stateDir, 'journal.json'),
    lock: join(stateDir, 'lock'),
    pins: join(stateDir, 'pins'),
    sets: join(stateDir, 'sets'),
  };
  const setDir = (id: string): string => join(p.sets, id);

  /** Reads a versioned JSON file; a corrupt one is reported and, with `repair`, moved aside. */
  async function readJson<T>(file: string, schema: ZodType<T>, repair: boolean, migrate: (raw: unknown) => unknown = (r) => r): Promise<{ value?: T; problem?: StateProblem }> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      return { problem: { file, message: `unreadable: ${errorMessage(err)}` } };
    }
    let message: string;
    try {
      const raw: unknown = JSON.parse(text);
      const r = schema.safeParse(migrate(raw));
      if (r.success) return { value: r.data };
      const version = (raw as { version?: unknown } | null)?.version;
      message = typeof version === 'number' && version > newestVersion(file)
        ? `written by a newer nixos-desync (schema version ${version})`
        : `invalid content: ${r.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '$'}: ${i.message}`).join('; ')}`;
    } catch (err) {
      message = `not valid JSON: ${errorMessage(err)}`;
    }
    const problem: StateProblem = { file, message };
    if (repair) {
      const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '')}`;
      await rename(file, aside);
      await fsyncDir(stateDir);
      problem.movedTo = aside;
    }
    return { problem };
  }

  async function pinsTarget(): Promise<string | null> {
    let st;
    try {
      st = await lstat(p.pins);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    if (!st.isSymbolicLink()) {
      throw new DesyncError('E_UNSAFE_PATH', `${p.pins} must be a symlink managed by nixos-desync (sets/<id>/pins), but it is not a symlink; move it away`);
    }
    const target = await readlink(p.pins);
    const m = /^sets\/([^/]+)\/pins$/.exec(target);
    if (!m || !SET_ID_RE.test(m[1]!)) {
      throw new DesyncError('E_UNSAFE_PATH', `${p.pins} points to ${target}, not to a pin set of this state directory; refusing to use it`);
    }
    return m[1]!;
  }

  /** Pins as the files of a set show them (the fallback when state.json is lost). */
  async function readSetPins(id: string): Promise<Record<string, Pin>> {
    const pins: Record<string, Pin> = {};
    let names: string[];
    try {
      names = await readdir(join(setDir(id), 'pins'));
    } catch {
      return pins;
    }
    for (const n of names.filter((x) => x.endsWith('.nix')).sort()) {
      const pin = parsePinFile(await readFile(join(setDir(id), 'pins', n), 'utf8').catch(() => ''));
      if (pin) pins[n.slice(0, -4)] = pin;
    }
    return pins;
  }

  return {
    dir: stateDir,
    paths: p,
    setDir,

    /**
     * Before the lock: the state directory exists and is safe (ownership/permissions, like sshd's
     * StrictModes). Nothing inside it is touched here.
     */
    async prepareDir(): Promise<void> {
      try {
        await ensureDir(stateDir, 0o755);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new DesyncError('E_STATE', `cannot create the state directory ${stateDir}: ${e.code ?? errorMessage(err)}${e.path && e.path !== stateDir ? ` (at ${e.path})` : ''}; check stateDir in the config`, { cause: err });
      }
      await checkStateDir(stateDir);
    },

    /** The state directory, if it exists, is safe (read-only check, for dry runs and readers). */
    async checkDir(): Promise<boolean> {
      try {
        await checkSafeDir(stateDir);
        await checkStateDir(stateDir);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
        throw err;
      }
    },

    /**
     * With the lock held: the layout exists and is safe, and temp files left by dead writers
     * (a crash between writing and renaming) are removed; a live writer's are never touched.
     */
    async ensureLayout(): Promise<void> {
      await this.prepareDir();
      await mkdir(p.sets, { recursive: true, mode: 0o755 });
      await checkSafeDir(p.sets);
      await removeStaleTemps(stateDir);
    },

    async readState(opts: { repair: boolean }): Promise<ReadResult<MachineState>> {
      const r = await readJson(p.state, stateSchema, opts.repair, migrateState);
      if (r.value) return { value: r.value, problems: [] };
      // Missing or corrupt: the pin files of the current set still say what is pinned.
      const state = emptyState();
      const id = await pinsTarget().catch(() => null);
      if (id !== null) {
        state.committed = { setId: id, at: null, pins: await readSetPins(id) };
      }
      return { value: state, problems: r.problem ? [r.problem] : [] };
    },

    writeState: (s: MachineState, failpointName?: string) =>
      guardWrite(p.state, () => writeFileAtomic(p.state, JSON.stringify(s, null, 2) + '\n', 0o644, failpointName)),

    async readHistory(opts: { repair: boolean }): Promise<ReadResult<History>> {
      const r = await readJson(p.history, historySchema, opts.repair);
      return { value: r.value ?? { version: HISTORY_VERSION, runs: [] }, problems: r.problem ? [r.problem] : [] };
    },

    async appendHistory(rec: RunRecord, limit = DEFAULT_HISTORY_LIMIT): Promise<StateProblem[]> {
      const { value, problems } = await this.readHistory({ repair: true });
      const runs = [...value.runs, rec].slice(-limit);
      await guardWrite(p.history, () => writeFileAtomic(p.history, JSON.stringify({ version: HISTORY_VERSION, runs }, null, 1) + '\n'));
      return problems;
    },

    /** The in-flight run's journal; `repair` (the loop only) moves a corrupt one aside. */
    async readJournal(opts: { repair: boolean } = { repair: true }): Promise<ReadResult<Journal | null>> {
      const r = await readJson(p.journal, journalSchema, opts.repair);
      return { value: r.value ?? null, problems: r.problem ? [r.problem] : [] };
    },
    writeJournal: (j: Journal) => guardWrite(p.journal, () => writeFileAtomic(p.journal, JSON.stringify(j) + '\n')),
    async removeJournal(): Promise<void> {
      await rm(p.journal, { force: true });
      await fsyncDir(stateDir);
    },

    pinsTarget,
    readSetPins,

    async createSet(id: string): Promise<string> {
      if (!SET_ID_RE.test(id)) throw new DesyncError('E_STATE', `invalid set id ${id}`);
      const dir = setDir(id);
      await mkdir(join(dir, 'roots'), { recursive: true, mode: 0o755 });
      await mkdir(join(dir, 'pins'), { recursive: true, mode: 0o755 });
      // The new directory and its parent reach the disk before anything refers to them.
      await fsyncDir(dir);
      await fsyncDir(p.sets);
      return dir;
    },

    async writeSetPins(id: string, pins: Record<string, Pin>): Promise<void> {
      for (const [name, pin] of Object.entries(pins)) {
        const f = join(setDir(id), 'pins', `${name}.nix`);
        await guardWrite(f, () => writeFileAtomic(f, renderPinFile(name, pin, id)));
      }
      await fsyncDir(join(setDir(id), 'pins'));
    },

    /**
     * Makes `pins` show set `id` (one atomic rename). The set's directories are fsynced first
     * (its pins/ and roots/, the set itself, then sets/): after a power loss the symlink never
     * points at a set whose directory entries did not reach the disk.
     */
    async pointPinsAt(id: string): Promise<void> {
      await guardWrite(p.pins, async () => {
        await fsyncDir(join(setDir(id), 'pins'));
        // roots/ may be missing in a set restored by hand; the pins are what must be durable.
        await fsyncDir(join(setDir(id), 'roots')).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
        });
        await fsyncDir(setDir(id));
        await fsyncDir(p.sets);
        await replaceSymlink(`sets/${id}/pins`, p.pins);
      });
    },

    /** Refuses a committed set whose directories or pin files were replaced (e.g. by symlinks). */
    async verifySet(id: string): Promise<void> {
      for (const d of [p.sets, setDir(id), join(setDir(id), 'pins')]) {
        await checkSafeDir(d).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ENOENT') throw err;
          throw new DesyncError('E_STATE', `the committed pin set ${setDir(id)} is missing (${d} does not exist); ` +
            'restore it from a backup, or move state.json aside to start over from the next run', { cause: err });
        });
      }
      for (const n of await readdir(join(setDir(id), 'pins'))) {
        const st = await lstat(join(setDir(id), 'pins', n));
        if (!st.isFile()) {
          throw new DesyncError('E_UNSAFE_PATH', `${join(setDir(id), 'pins', n)} is not a regular file (a symlink or other file replaced it); refusing to use this pin set`);
        }
      }
    },

    async listSets(): Promise<string[]> {
      const names = await readdir(p.sets).catch(() => [] as string[]);
      return names.filter((n) => SET_ID_RE.test(n)).sort();
    },

    async removeSet(id: string): Promise<void> {
      if (!SET_ID_RE.test(id)) return;
      await rm(setDir(id), { recursive: true, force: true });
    },

    /** Files moved aside as corrupt (reported by status and metrics until removed). */
    async corruptFiles(): Promise<string[]> {
      const names = await readdir(stateDir).catch(() => [] as string[]);
      return names.filter((n) => n.includes('.corrupt-')).sort();
    },
  };
}

export type StateStore = ReturnType<typeof createStateStore>;

/** The newest schema version this program writes for a state file (by its name). */
function newestVersion(file: string): number {
  if (file.endsWith('state.json')) return STATE_VERSION;
  if (file.endsWith('journal.json')) return JOURNAL_VERSION;
  return HISTORY_VERSION;
}

/** State writes fail with a clear E_STATE error (ENOSPC, EROFS, EACCES…) instead of a raw errno. */
async function guardWrite<T>(file: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof DesyncError) throw err;
    const e = err as NodeJS.ErrnoException;
    const hint = e.code === 'ENOSPC' ? ' (the state filesystem is full)' : e.code === 'EROFS' ? ' (the state filesystem is read-only)' : '';
    throw new DesyncError('E_STATE', `cannot write ${file}: ${e.code ?? ''} ${errorMessage(err)}${hint}; nothing was committed`, { cause: err });
  }
}
