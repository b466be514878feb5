// System metrics from <profilesDir> and <runDir>, as the watchers keep them in the model:
// generations, reboot required, and the running system's nixpkgs (on any NixOS host).
import type { Config } from '../config/schema.js';
import { bool, type Collector } from './collector.js';
import { emitReboot } from './reboot.js';

/** The flake input the system follows (flake mode's `flake.input`, else `nixpkgs`). */
export function followedInput(config: Config): string {
  return config.flake?.input ?? 'nixpkgs';
}

export function systemCollector(): Collector {
  return {
    name: 'system',
    collect(ctx, emit) {
      const { config, model } = ctx;
      const s = model.system;
      if (!s.profilesError) {
        if (s.generation !== null) emit('nixos_desync_system_generation', {}, s.generation);
        if (s.generationTimestamp !== null) emit('nixos_desync_system_generation_timestamp_seconds', {}, s.generationTimestamp.getTime() / 1000);
        emit('nixos_desync_system_generations', {}, s.generations);
      }
      if (!s.runError) {
        emit('nixos_desync_system_reboot_required', {}, bool(s.rebootRequired || s.reboot.reasons.length > 0));
        if (s.nixpkgs) {
          emit('nixos_desync_system_nixpkgs_info', { revision: s.nixpkgs.revision, version: s.nixpkgs.version }, 1);
          // A label without a date (a git checkout): the lock's date of the followed input.
          const locked = s.nixpkgs.date ? null : model.flake?.inputs.find((i) => i.input === followedInput(config));
          const at = s.nixpkgs.date ? s.nixpkgs.date.getTime() / 1000 : locked?.lastModified;
          if (at !== undefined) emit('nixos_desync_system_nixpkgs_timestamp_seconds', {}, at);
        }
      }
      if (!s.profilesError && !s.runError) {
        emit('nixos_desync_system_activation_pending', {}, bool(s.activationPending));
        emitReboot(ctx, emit);
      }
      // The running system's sources. A desync's series only when its running revision differs
      // from its committed pin (pin_info says the rest): keeps the series budget of 14 per desync.
      const sources = s.currentToplevel === null ? null : (model.state.state.systems[s.currentToplevel] ?? s.toplevelSources);
      if (sources) {
        emit('nixos_desync_system_source_info', { source: 'nixpkgs', revision: sources.nixpkgs.revision }, 1);
        const pins = model.state.state.committed.pins;
        for (const [name, d] of Object.entries(sources.desyncs).sort(([a], [b]) => a.localeCompare(b))) {
          if (name === 'nixpkgs' || pins[name]?.revision === d.revision) continue;
          emit('nixos_desync_system_source_info', { source: name, revision: d.revision }, 1);
        }
      }
      return [s.profilesError, s.runError].filter((e) => e !== null).join('; ') || null;
    },
  };
}
