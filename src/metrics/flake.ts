// exporter.flakeLock: the date of the host flake's inputs' locked commits, so a lock that
// nobody updates (or an update job that fails) shows as growing age, on any host. Bounded
// (series budget): the followed input (flake mode: flake.input; else `nixpkgs`) always, then
// the oldest other inputs, FLAKE_INPUT_SERIES_MAX in all. In flake mode the desyncs' own
// inputs are left out: the per-desync metrics already say how far behind each pin is.
import { desyncInput, type Config } from '../config/schema.js';
import type { LockedInput } from '../watch/flake-lock.js';
import type { Collector } from './collector.js';

/** At most this many `flake_input_last_modified_timestamp_seconds` series per host (a flake may have dozens of inputs). */
export const FLAKE_INPUT_SERIES_MAX = 5;

/** The flake inputs that are desync pins (flake mode only; `input`, default `nixpkgs-<name>`). */
export function desyncInputs(config: Config): Set<string> {
  if (!config.flake) return new Set();
  return new Set(Object.entries(config.desyncs).map(([name, d]) => desyncInput(name, d)));
}

/** The input the system follows: flake mode's `flake.input`, else (a monitored lock) `nixpkgs`. */
export function followedInput(config: Config): string {
  return config.flake?.input ?? 'nixpkgs';
}

const byName = (a: LockedInput, b: LockedInput): number => (a.input < b.input ? -1 : a.input > b.input ? 1 : 0);

/** The inputs exported (sorted by name): the followed one, then the oldest others, at most FLAKE_INPUT_SERIES_MAX. */
export function exportedInputs(inputs: readonly LockedInput[], followed: string, skip: ReadonlySet<string>): LockedInput[] {
  const main = inputs.filter((i) => i.input === followed);
  const others = inputs.filter((i) => i.input !== followed && !skip.has(i.input)).sort((a, b) => a.lastModified - b.lastModified || byName(a, b));
  return [...main, ...others].slice(0, FLAKE_INPUT_SERIES_MAX).sort(byName);
}

export function flakeCollector(): Collector {
  // The config never changes under a running exporter: the skip set is built once, not per scrape.
  let skipFor: { config: Config; inputs: Set<string> } | null = null;
  return {
    name: 'flake',
    collect({ config, model }, emit) {
      const f = model.flake;
      if (!f) return null;
      if (skipFor?.config !== config) skipFor = { config, inputs: desyncInputs(config) };
      for (const i of exportedInputs(f.inputs, followedInput(config), skipFor.inputs)) {
        emit('nixos_desync_flake_input_last_modified_timestamp_seconds', { input: i.input }, i.lastModified);
      }
      return f.error;
    },
  };
}
