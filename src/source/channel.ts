// Channel mode (the default source): `nix-channel --update`, the channel's nixpkgs as the
// candidate, and the `pins` symlink of the state directory as what the system build imports.
import type { Config } from '../config/schema.js';
import type { NixAdapter } from '../nix/adapter.js';
import type { StateStore } from '../state/store.js';
import { restorePins } from './pins.js';
import type { Source } from './source.js';

export function createChannelSource(deps: { config: Config; nix: NixAdapter; store: StateStore }): Source {
  const { config, nix, store } = deps;
  const name = config.channel.name;
  return {
    kind: 'channel',

    async fetch(o) {
      if (!config.channel.update) return { skipped: true, message: 'skipped (channel.update is false)' };
      if (o.dryRun) return { skipped: true, message: `skipped (dry run: nix-channel --update ${name} not run)` };
      await nix.updateChannel(name, o);
      return { skipped: false, message: `nix-channel --update ${name} ok` };
    },

    candidate: (o) => nix.resolveCandidate(config.nixpkgs, o),

    // The set's pin files are complete and rooted: one atomic rename makes them visible.
    expose: (set) => store.pointPinsAt(set.id),

    restore: (committed, candidateId) => restorePins(store, committed, candidateId),

    // The pins symlink already shows the set; state.json (the loop's commit point) says it is committed.
    commit: async () => undefined,
  };
}
