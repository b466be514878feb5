// The one place where the parts are wired together from a config.
import type { Config } from './config/schema.js';
import { createCliNix } from './nix/cli-adapter.js';
import { createChannelSource } from './source/channel.js';
import { createFlakeSource } from './source/flake.js';
import { createStateStore } from './state/store.js';
import { createNixosSystem } from './system/nixos.js';
import { runCommand } from './util/exec.js';
import { withHeartbeat, type HeartbeatOptions } from './util/heartbeat.js';
import type { Logger } from './util/log.js';
import type { UpgradeDeps } from './upgrade/run.js';

/** `progress`: every command of the run reports while it runs (util/heartbeat.ts); a terminal gets a live line. */
export function upgradeDeps(config: Config, logger: Logger, env: NodeJS.ProcessEnv, signal?: AbortSignal, progress: Omit<HeartbeatOptions, 'logger'> = {}): UpgradeDeps {
  const run = withHeartbeat(runCommand, { logger, ...progress });
  const nix = createCliNix({ env, run });
  const store = createStateStore(config.stateDir);
  return {
    config,
    nix,
    run,
    store,
    source: config.flake !== null ? createFlakeSource({ config, store, run, env }) : createChannelSource({ config, nix, store }),
    system: createNixosSystem({ config, run, env }),
    logger,
    env,
    signal,
  };
}
