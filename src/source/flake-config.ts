// check-config's flake checks (exit 78): the config names inputs that must exist in
// `<flake.path>/flake.lock` as nodes the loop can re-lock.
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { desyncInput } from '../config/schema.js';
import { formatJsonPath, type ConfigProblem } from '../config/load.js';
import { DesyncError, errorMessage, isDesyncError } from '../util/errors.js';
import { lockableProblem, readLockFile, rootInput } from './flake-lock.js';

export function flakeLockPath(config: Config): string {
  return join(config.flake!.path, 'flake.lock');
}

export interface FlakeCheck {
  problems: ConfigProblem[];
  /** Not errors, but worth saying (e.g. a desync input that tracks another branch). */
  warnings: string[];
}

/**
 * Problems of a flake-mode config against its flake.lock (none in channel mode). A lock file
 * that does not exist here is a problem only with `requireLock` (upgrade); check-config may run
 * where the host's files are absent (e.g. in a build sandbox), so there it is a warning.
 */
export async function checkFlakeConfig(config: Config, opts: { requireLock: boolean }): Promise<FlakeCheck> {
  const out: FlakeCheck = { problems: [], warnings: [] };
  if (config.flake === null) return out;
  const file = flakeLockPath(config);
  let lock;
  try {
    lock = (await readLockFile(file)).lock;
  } catch (err) {
    const why = isDesyncError(err) ? err.message : errorMessage(err);
    const absent = isDesyncError(err) && (err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
    if (absent && !opts.requireLock) {
      out.warnings.push(`${file} cannot be read here; flake inputs are checked when upgrade starts`);
    } else {
      out.problems.push({ path: formatJsonPath(['flake', 'path']), message: `${why} (flake mode needs the host flake's lock file: run nix flake lock in ${config.flake.path})` });
    }
    return out;
  }
  const followed = lockableProblem(lock, config.flake.input);
  if (followed !== null) out.problems.push({ path: formatJsonPath(['flake', 'input']), message: `${file}: ${followed}` });
  const main = rootInput(lock, config.flake.input);
  for (const [name, d] of Object.entries(config.desyncs)) {
    const input = desyncInput(name, d);
    const p = lockableProblem(lock, input);
    if (p !== null) {
      out.problems.push({ path: formatJsonPath(['desyncs', name, 'input']), message: `${file}: ${p}` });
      continue;
    }
    const own = rootInput(lock, input);
    if (main.kind === 'node' && own.kind === 'node' && !isDeepStrictEqual(main.value.original, own.value.original)) {
      out.warnings.push(`desync ${name}: input ${input} has another original reference than ${config.flake.input} in ${file}; it is still locked to the revision of ${config.flake.input} when its gate passes`);
    }
  }
  return out;
}

/** Throws the E_CONFIG error (exit 78) listing every flake problem of the config. */
export async function assertFlakeConfig(config: Config, configFile: string, opts: { requireLock: boolean }): Promise<string[]> {
  const { problems, warnings } = await checkFlakeConfig(config, opts);
  if (problems.length > 0) {
    const lines = problems.map((p) => `  ${p.path}: ${p.message}`).join('\n');
    throw new DesyncError('E_CONFIG', `invalid config ${configFile}:\n${lines}`, { details: { file: configFile, problems } });
  }
  return warnings;
}
