// The one place where the parts are wired together from a config.
import type { Config } from './config/schema.js';
import { createCliNix } from './nix/cli-adapter.js';
import { createChannelSource } from './source/channel.js';
import { createFlakeSource } from './source/flake.js';
import { createStateStore } from './state/store.js';
import { createNixosSystem } from './system/nixos.js';
import { runCommand } from './util/exec.js';
import type { Logger } from './util/log.js';
import type { UpgradeDeps } from './upgrade/run.js';

export function upgradeDeps(config: Config, logger: Logger, env: NodeJS.ProcessEnv, signal?: AbortSignal): UpgradeDeps {
  const nix = createCliNix({ env, run: runCommand });
  const store = createStateStore(config.stateDir);
  return {
    config,
    nix,
    run: runCommand,
    store,
    source: config.flake !== null ? createFlakeSource({ config, store, run: runCommand, env }) : createChannelSource({ config, nix, store }),
    system: createNixosSystem({ config, run: runCommand, env }),
    logger,
    env,
    signal,
  };
}
