// A stand-in for `nixos-rebuild build|switch|boot` on hosts without NixOS (demo and tests):
// builds the fake system with real nix-build and sets a real profile generation.
import { execaSync } from 'execa';
import { existsSync, lstatSync, mkdirSync, readFileSync, realpathSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

function usage(): never {
  process.stderr.write('usage: fake-nixos-rebuild build|switch|boot --host DIR [--flake PATH#HOST]\n');
  process.exit(64);
}

function atomicSymlink(target: string, link: string): void {
  const tmp = `${link}.tmp-${process.pid}`;
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}

const [action, flag, host, flakeFlag, flakeRef] = process.argv.slice(2);
if (!action || !['build', 'switch', 'boot'].includes(action) || flag !== '--host' || !host) usage();
if (flakeFlag !== undefined && (flakeFlag !== '--flake' || !flakeRef || !flakeRef.includes('#'))) usage();
const work = join(host, 'work');
mkdirSync(work, { recursive: true });
process.stdout.write(`building the system configuration...\n`);
// The build's own output goes to ours (stdout of nix-build is the store path it prints).
const build = flakeRef !== undefined
  ? (() => {
      // As nixos-rebuild --flake PATH#HOST: a pure `nix build` of the configuration's toplevel.
      const hash = flakeRef.lastIndexOf('#');
      const attr = `${flakeRef.slice(0, hash)}#nixosConfigurations.${JSON.stringify(flakeRef.slice(hash + 1))}.config.system.build.toplevel`;
      return execaSync('nix', ['--extra-experimental-features', 'nix-command flakes', 'build', attr, '-o', join(work, 'result')], { stdin: 'ignore', stdout: 'inherit', stderr: 'inherit', reject: false });
    })()
  : execaSync('nix-build', [
      join(host, 'system.nix'),
      '--argstr', 'nixpkgs', join(host, 'channels', 'nixos'),
      '--argstr', 'pinsDir', join(stateDirOf(host), 'pins'),
      '-o', join(work, 'result'),
    ], { stdin: 'ignore', stderr: 'inherit', reject: false });
if (build.failed) {
  process.stderr.write(`error: building the system configuration failed\n`);
  process.exit(build.exitCode ?? 1);
}
const out = flakeRef !== undefined ? realpathSync(join(work, 'result')) : String(build.stdout).trim();
process.stdout.write(`${out}\n`);
if (action === 'build') process.exit(0);
const profiles = join(host, 'profiles');
mkdirSync(profiles, { recursive: true });
execaSync('nix-env', ['-p', join(profiles, 'system'), '--set', out], { stdio: 'inherit' });
if (action === 'switch') {
  const run = join(host, 'run');
  mkdirSync(run, { recursive: true });
  atomicSymlink(out, join(run, 'current-system'));
  if (!existsSync(join(run, 'booted-system')) && !isLink(join(run, 'booted-system'))) atomicSymlink(out, join(run, 'booted-system'));
  process.stdout.write(`activating the configuration... done\n`);
}

/** The host's stateDir from its config.json (the demo default is <host>/state). */
function stateDirOf(hostDir: string): string {
  try {
    const c = JSON.parse(readFileSync(join(hostDir, 'config.json'), 'utf8')) as { stateDir?: string };
    return c.stateDir ?? join(hostDir, 'state');
  } catch {
    return join(hostDir, 'state');
  }
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
