// exporter.flakeLock: the date of every direct input's locked commit, so a lock that nobody
// updates (or an update job that fails) shows as growing age, on any host. In flake mode the
// desyncs' own inputs are left out: the per-desync metrics already say how far behind each
// pin is, and a second series per desync would break the series budget.
import { desyncInput, type Config } from '../config/schema.js';
import type { Collector } from './collector.js';

/** The flake inputs that are desync pins (flake mode only; `input`, default `nixpkgs-<name>`). */
export function desyncInputs(config: Config): Set<string> {
  if (!config.flake) return new Set();
  return new Set(Object.entries(config.desyncs).map(([name, d]) => desyncInput(name, d)));
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
      const skip = skipFor.inputs;
      for (const i of f.inputs) {
        if (!skip.has(i.input)) emit('nixos_desync_flake_input_last_modified_timestamp_seconds', { input: i.input }, i.lastModified);
      }
      return f.error;
    },
  };
}
