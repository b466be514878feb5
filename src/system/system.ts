// The system side of a run behind one interface (DESIGN.md "The run", steps 7–8): build the
// toplevel, activate exactly that toplevel, check the host's health, make it the boot default,
// and roll back to the previous toplevel. nixos.ts implements it for NixOS.
import type { CallOptions } from '../nix/adapter.js';

export interface BuiltSystem {
  /** The toplevel store path the build left as ./result (null: the build left no result). */
  toplevel: string | null;
  /** The command that built it, for progress lines. */
  command: string;
  durationMs: number;
}

export interface SystemSide {
  /** Step 7: runs `system.build`. Throws E_SYSTEM_BUILD (with the output tail) on failure. */
  build(o: CallOptions): Promise<BuiltSystem>;
  /**
   * Step 8: activates `built` per `system.activate`. Returns a progress line, or null when
   * activation is disabled (`system.activate: null`). Throws E_ACTIVATE on failure.
   */
  activate(built: BuiltSystem, o: CallOptions): Promise<string | null>;
}
