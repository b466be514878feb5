// System metrics from <profilesDir> and <runDir>, as the watchers keep them in the model.
import { bool, type Collector } from './collector.js';

export function systemCollector(): Collector {
  return {
    name: 'system',
    collect({ model }, emit) {
      const s = model.system;
      if (!s.profilesError) {
        if (s.generation !== null) emit('nixos_desync_system_generation', {}, s.generation);
        if (s.generationTimestamp !== null) emit('nixos_desync_system_generation_timestamp_seconds', {}, s.generationTimestamp.getTime() / 1000);
        emit('nixos_desync_system_generations', {}, s.generations);
      }
      if (!s.runError) emit('nixos_desync_system_reboot_required', {}, bool(s.rebootRequired));
      if (!s.profilesError && !s.runError) emit('nixos_desync_system_activation_pending', {}, bool(s.activationPending));
      return [s.profilesError, s.runError].filter((e) => e !== null).join('; ') || null;
    },
  };
}
