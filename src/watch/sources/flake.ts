// The flake source (exporter.flakeLock): the inputs a flake.lock locks.
import { basename, dirname } from 'node:path';
import { errorMessage } from '../../util/errors.js';
import { readFlakeLock, type LockedInput } from '../flake-lock.js';
import type { Source } from './source.js';

export interface FlakeSnapshot {
  file: string;
  inputs: LockedInput[];
  error: string | null;
}

export function createFlakeSource(file: string): Source<FlakeSnapshot> {
  const name = basename(file);
  return {
    name: 'flake',
    root: dirname(file),
    accept: (n) => n === name,
    initial: { file, inputs: [], error: 'not read yet' },
    async read() {
      let snapshot: FlakeSnapshot;
      try {
        snapshot = { file, inputs: await readFlakeLock(file), error: null };
      } catch (err) {
        // The last good inputs are not kept: an age read from a file that is gone would lie.
        snapshot = { file, inputs: [], error: errorMessage(err) };
      }
      return () => ({ snapshot, error: snapshot.error });
    },
  };
}
