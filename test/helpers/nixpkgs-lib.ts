// nixpkgs' real `lib` for the module tests: the vendored tarball, unpacked once per content.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const NIXPKGS_LIB_TARBALL = fileURLToPath(new URL('../fixtures/nixpkgs-lib/nixpkgs-lib.tar.xz', import.meta.url));

/**
 * Returns a directory holding `lib/` (so `import "${dir}/lib"` is nixpkgs' lib). Unpacked
 * next to a temporary name and renamed into place, so parallel workers never see half a tree.
 */
export function nixpkgsLibDir(): string {
  const digest = createHash('sha256').update(readFileSync(NIXPKGS_LIB_TARBALL)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `nixos-desync-nixpkgs-lib-${digest}`);
  if (existsSync(join(dir, 'lib', 'default.nix'))) return dir;
  const staging = mkdtempSync(join(tmpdir(), 'nixos-desync-nixpkgs-lib-unpack-'));
  try {
    execFileSync('tar', ['-C', staging, '-xJf', NIXPKGS_LIB_TARBALL], { stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      renameSync(staging, dir);
    } catch (err) {
      // Another worker won the race: its copy is identical.
      if (!existsSync(join(dir, 'lib', 'default.nix'))) throw err;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return dir;
}
