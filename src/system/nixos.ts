// SystemSide for NixOS: `system.build` (nixos-rebuild build by default), then activation.
import type { Config } from '../config/schema.js';
import { DesyncError } from '../util/errors.js';
import { describeFailure, tailLines, type Runner } from '../util/exec.js';
import type { SystemSide } from './system.js';

export function createNixosSystem(deps: { config: Config; run: Runner; env: NodeJS.ProcessEnv }): SystemSide {
  const { config, run, env } = deps;
  return {
    async build(o) {
      const argv = config.system.build;
      const r = await run(argv, { env, timeoutMs: o.timeoutMs, signal: o.signal, onSpawn: o.onSpawn });
      if (r.exitCode !== 0 || r.timedOut) {
        throw new DesyncError('E_SYSTEM_BUILD', `system build (${argv.join(' ')}) failed: ${describeFailure(r)}`,
          { details: { tail: tailLines(r.stderr || r.stdout, 20) } });
      }
      return { toplevel: null, command: argv.join(' '), durationMs: r.durationMs };
    },

    async activate(_built, o) {
      const argv = config.system.activate;
      if (argv === null) return null;
      const r = await run(argv, { env, timeoutMs: o.timeoutMs, signal: o.signal, onSpawn: o.onSpawn });
      if (r.exitCode !== 0 || r.timedOut) {
        throw new DesyncError('E_ACTIVATE', `activation (${argv.join(' ')}) failed: ${describeFailure(r)}\n${tailLines(r.stderr || r.stdout, 20)}`);
      }
      return `${argv.join(' ')} ok`;
    },
  };
}
