// The run source: <runDir>'s current-system and booted-system (reboot required, an activation
// pending, the running system's nixpkgs and the sources written into its toplevel).
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../../config/schema.js';
import type { SystemSources } from '../../state/model.js';
import { readToplevelSources } from '../../system/generations.js';
import { readActivationPending, readRebootRequired, readRunningNixpkgs, type NixpkgsVersion } from '../../system/running.js';
import { dirProblem, type Source } from './source.js';
import { NO_REBOOT, readRebootSituation, type RebootSituation } from '../../reboot/triggers.js';

export interface RunReading {
  rebootRequired: boolean;
  activationPending: boolean;
  /** The running system's nixpkgs from its nixos-version (null: not NixOS, or no version). */
  nixpkgs: NixpkgsVersion | null;
  /** The running toplevel (`<runDir>/current-system`), and the sources written into it by the module (null: none). */
  currentToplevel: string | null;
  toplevelSources: SystemSources | null;
  /** The booted system against the boot default: what a reboot would apply (reboot.triggers; also read by the profiles source). */
  reboot: RebootSituation;
  runError: string | null;
}

export function createRunSource(config: Config): Source<RunReading> {
  const current = (): Promise<string | null> => realpath(join(config.runDir, 'current-system')).catch(() => null);
  let published: string | null | undefined;
  return {
    name: 'run',
    root: config.runDir,
    accept: (n) => n === 'current-system' || n === 'booted-system',
    initial: { rebootRequired: false, activationPending: false, nixpkgs: null, currentToplevel: null, toplevelSources: null, reboot: NO_REBOOT, runError: 'not read yet' },
    async read() {
      const runError = await dirProblem(config.runDir);
      const [rebootRequired, activationPending, nixpkgs, currentToplevel, reboot] = await Promise.all([
        readRebootRequired(config.runDir), readActivationPending(config.profilesDir, config.runDir), readRunningNixpkgs(config.runDir),
        current(), readRebootSituation(config.profilesDir, config.runDir, config.reboot.triggers),
      ]);
      const toplevelSources = currentToplevel === null ? null : await readToplevelSources(currentToplevel);
      const snapshot = { rebootRequired, activationPending, nixpkgs, currentToplevel, toplevelSources, reboot, runError };
      return () => {
        published = currentToplevel;
        return { snapshot, error: runError };
      };
    },
    // One realpath per scrape: the running system as it is now, not as of the last debounced read.
    async stale() {
      return published !== undefined && (await current()) !== published;
    },
  };
}
