// The one place where the parts are wired together from a config.
import type { Config } from './config/schema.js';
import { createCliNix } from './nix/cli-adapter.js';
import { createStateStore } from './state/store.js';
import { runCommand } from './util/exec.js';
import type { Logger } from './util/log.js';
import type { UpgradeDeps } from './upgrade/run.js';

export function upgradeDeps(config: Config, logger: Logger, env: NodeJS.ProcessEnv, signal?: AbortSignal): UpgradeDeps {
  return {
    config,
    nix: createCliNix({ env, run: runCommand }),
    run: runCommand,
    store: createStateStore(config.stateDir),
    logger,
    env,
    signal,
  };
}
