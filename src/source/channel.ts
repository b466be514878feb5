// Channel mode (the default source): `nix-channel --update`, the channel's nixpkgs as the
// candidate, and the `pins` symlink of the state directory as what the system build imports.
import { rm } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import type { NixAdapter } from '../nix/adapter.js';
import type { StateStore } from '../state/store.js';
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

    async restore(committed, candidateId) {
      const target = await store.pinsTarget().catch(() => null);
      if (committed !== null) {
        if (target !== committed.id) await store.pointPinsAt(committed.id);
      } else if (target !== null && target === candidateId) {
        await rm(store.paths.pins, { force: true });
      }
    },

    // The pins symlink already shows the set; state.json (the loop's commit point) says it is committed.
    commit: async () => undefined,
  };
}
