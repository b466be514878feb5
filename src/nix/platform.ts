// The platform the running NixOS system was built for (`<runDir>/current-system/system`, e.g.
// "x86_64-linux", written by NixOS into every toplevel): the gate imports nixpkgs for it, as
// the system's own configuration does (nixpkgs.hostPlatform), not for whatever Nix defaults to.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const NIX_SYSTEM_RE = /^[a-z0-9_]+-[a-z0-9_]+$/;

/** The running system's platform, or null (not NixOS, or unreadable) → Nix's builtins.currentSystem. */
export async function runningSystemPlatform(runDir: string): Promise<string | null> {
  try {
    const s = (await readFile(join(runDir, 'current-system', 'system'), 'utf8')).trim();
    return NIX_SYSTEM_RE.test(s) ? s : null;
  } catch {
    return null;
  }
}
