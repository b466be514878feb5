// The NixOS module's units for a real systemd in a container (test/nix/module-systemd.test.ts,
// test/nix/module-reboot-systemd.test.ts): the store paths the generated units name — this
// checkout's CLI as the package, Debian's systemctl as pkgs.systemd, a nix-store/nix-env
// stand-in as pkgs.nix — added to the host's store, and a host module evaluated to its units.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { CLI } from './cli.js';
import { nixpkgsLibDir } from './nixpkgs-lib.js';

const EVAL_NIX = fileURLToPath(new URL('../nix/eval.nix', import.meta.url));
export const NIX_TEST_ENV = { ...process.env, NIX_CONFIG: 'sandbox = false\nsubstituters =' };

export type Tree = Record<string, string | { link: string } | { exec: string }>;

/** A directory added to the host's store (nix-store --add): a real store path the units can name. */
export function storePath(tmp: string, name: string, tree: Tree): string {
  const dir = join(tmp, 'trees', name);
  for (const [rel, v] of Object.entries(tree)) {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    if (typeof v === 'string') writeFileSync(p, v);
    else if ('link' in v) symlinkSync(v.link, p);
    else {
      writeFileSync(p, v.exec);
      chmodSync(p, 0o755);
    }
  }
  return execFileSync('nix-store', ['--add', dir], { env: NIX_TEST_ENV, encoding: 'utf8' }).trim();
}

/** The package (bin/nixos-desync runs this checkout's dist/ with the host's node), pkgs.systemd and pkgs.nix. */
export function moduleStandins(tmp: string): { pkg: string; systemd: string; nix: string } {
  const pkg = storePath(tmp, 'nixos-desync', { 'bin/nixos-desync': { exec: `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n` } });
  const systemd = storePath(tmp, 'systemd-debian', { 'bin/systemctl': { link: '/bin/systemctl' }, 'bin/systemd-escape': { link: '/usr/bin/systemd-escape' } });
  const nix = storePath(tmp, 'nix-standin', {
    'bin/nix-store': {
      exec: '#!/bin/sh\n# GC-root registration only (the container has no Nix): --realise P --add-root LINK --indirect\nPATH=$PATH:/usr/bin:/bin\n' +
        'if [ "$#" = 5 ] && [ "$1" = --realise ] && [ "$3" = --add-root ] && [ "$5" = --indirect ]; then ln -sfn "$2" "$4" && echo "$4" && exit 0; fi\n' +
        'echo "nix-store stand-in: unsupported: $*" >&2; exit 1\n',
    },
    'bin/nix-env': {
      exec: '#!/bin/sh\n# -p PROFILE --set PATH only\nset -eu\nPATH=$PATH:/usr/bin:/bin\n[ "$#" = 4 ] && [ "$1" = -p ] && [ "$3" = --set ] || { echo "nix-env stand-in: unsupported: $*" >&2; exit 1; }\n' +
        'mkdir -p "$(dirname "$2")"\nn=$(( $(ls "$2"-*-link 2>/dev/null | wc -l) + 1 ))\nln -sfn "$4" "$2-$n-link"\nln -sfn "$(basename "$2")-$n-link" "$2"\n',
    },
  });
  return { pkg, systemd, nix };
}

export interface EvaluatedUnits {
  failedAssertions: string[];
  units: Record<string, string>;
  tmpfiles: string[];
  /** The generated config's store path (what the units pass as --config). */
  configFile: string;
}

/**
 * The host module's generated units (test/nix/eval.nix), with the one change a container needs:
 * eval.nix's writeShellScript stand-in is builtins.toFile, which cannot make an executable
 * (nixpkgs' makes an executable bash script), so the activation script is run by bash.
 */
export function evaluateUnits(hostFile: string, pkg: string, nixpkgsPath: string, testArgs: Record<string, unknown>): EvaluatedUnits {
  const ev = JSON.parse(execFileSync('nix-instantiate', [
    '--eval', '--strict', '--json', '--read-write-mode', EVAL_NIX, '-A', 'inspect',
    '--argstr', 'nixpkgsLib', nixpkgsLibDir(),
    '--argstr', 'packageDir', pkg,
    '--argstr', 'nixpkgsPath', nixpkgsPath,
    '--arg', 'configModule', hostFile,
    '--argstr', 'testArgs', JSON.stringify(testArgs),
  ], { env: NIX_TEST_ENV, encoding: 'utf8' })) as EvaluatedUnits;
  expect(ev.failedAssertions).toEqual([]);
  const act = ev.units['nixos-desync-activate@.service']!;
  const adapted = act.replace(/^ExecStart=(\/nix\/store\/[a-z0-9]{32}-nixos-desync-activate) %i$/m, 'ExecStart=/bin/bash $1 %i');
  expect(adapted).not.toBe(act);
  return { ...ev, units: { ...ev.units, 'nixos-desync-activate@.service': adapted } };
}
