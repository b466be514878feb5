// The PR source (exporter.prDesyncDir): the desync proposal's own state files, <dir>/<name>.nix,
// re-read one by one as they change.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../util/errors.js';
import { readPrDesyncFile, type PrDesync } from '../pr-desync.js';
import { dirProblem, type Source } from './source.js';

export interface PrSnapshot {
  dir: string;
  desyncs: PrDesync[];
  /** File name → why it could not be read. */
  errors: Record<string, string>;
  dirError: string | null;
}

const acceptPr = (n: string): boolean => n.endsWith('.nix') && !n.startsWith('.');

export function createPrSource(dir: string, storeDir: string | undefined): Source<PrSnapshot> {
  const files = new Map<string, PrDesync | { error: string }>();
  const dirty = new Set<string>();

  return {
    name: 'pr',
    root: dir,
    accept: acceptPr,
    initial: { dir, desyncs: [], errors: {}, dirError: 'not read yet' },
    onEvent(name) {
      dirty.add(name);
    },
    async read(full) {
      const dirError = await dirProblem(dir);
      let names: string[];
      if (full || dirError) {
        names = dirError ? [] : (await readdir(dir).catch(() => [] as string[])).filter(acceptPr);
        files.clear();
        dirty.clear();
      } else {
        names = [...dirty];
        dirty.clear();
      }
      for (const file of names) {
        const name = file.slice(0, -'.nix'.length);
        try {
          files.set(file, await readPrDesyncFile(join(dir, file), name, storeDir));
        } catch (err) {
          const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
          if (code === 'ENOENT') files.delete(file);
          else files.set(file, { error: errorMessage(err) });
        }
      }
      const desyncs: PrDesync[] = [];
      const errors: Record<string, string> = {};
      for (const [file, v] of [...files].sort(([a], [b]) => a.localeCompare(b))) {
        if ('error' in v) errors[file] = v.error;
        else desyncs.push(v);
      }
      return () => ({ snapshot: { dir, desyncs, errors, dirError }, error: dirError ?? Object.values(errors)[0] ?? null });
    },
  };
}
