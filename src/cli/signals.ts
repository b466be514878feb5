// SIGTERM/SIGINT for the CLI: the first stops the run (its abort signal: commands are killed, the
// committed pin set kept, an activation rolled back); a second exits at once — except during a
// rollback (the shield), which finishes under its own timeout: only SIGKILL cuts it short.
import type { Shield } from '../util/shield.js';

export interface SignalDeps {
  abort: () => void;
  exit: (code: number) => void;
  stderr: (s: string) => void;
  shield: Shield;
}

export function createSignalHandler(deps: SignalDeps): (sig: NodeJS.Signals) => void {
  let signals = 0;
  return (sig) => {
    signals += 1;
    if (signals === 1) {
      deps.stderr(`nixos-desync: received ${sig}, stopping (the committed pin set is kept)\n`);
      deps.abort();
      return;
    }
    if (deps.shield.active) {
      deps.stderr(`nixos-desync: received ${sig} again during a rollback: it finishes first (under timeouts.system); SIGKILL would leave the system unverified\n`);
      return;
    }
    deps.exit(1);
  };
}
