// A stand-in for `nixos-rebuild build|switch|boot [--flake PATH#HOST]` on hosts without NixOS
// (demo and tests): builds the fake system with real Nix, leaving ./result in the working
// directory as the real one does; switch/boot also set a real profile generation and run the
// toplevel's bin/switch-to-configuration.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

function usage(): never {
  process.stderr.write('usage: fake-nixos-rebuild build|switch|boot --host DIR [--flake PATH#HOST]\n');
  process.exit(64);
}

const [action, flag, host, flakeFlag, flakeRef] = process.argv.slice(2);
if (!action || !['build', 'switch', 'boot'].includes(action) || flag !== '--host' || !host) usage();
if (flakeFlag !== undefined && (flakeFlag !== '--flake' || !flakeRef || !flakeRef.includes('#'))) usage();
process.stdout.write(`building the system configuration...\n`);
// `build` leaves ./result in the working directory, as the real one; switch/boot leave nothing.
// switch/boot: a temporary out-link, removed once the profile roots the system (one per call would pile up as GC roots).
const tmp = action === 'build' ? null : mkdtempSync(join(tmpdir(), 'fake-nixos-rebuild-'));
process.on('exit', () => tmp !== null && rmSync(tmp, { recursive: true, force: true }));
const outLink = tmp === null ? 'result' : join(tmp, 'result');
let out: string;
try {
  if (flakeRef !== undefined) {
    // As nixos-rebuild --flake PATH#HOST: a pure `nix build` of the configuration's toplevel.
    const hash = flakeRef.lastIndexOf('#');
    const attr = `${flakeRef.slice(0, hash)}#nixosConfigurations.${JSON.stringify(flakeRef.slice(hash + 1))}.config.system.build.toplevel`;
    execFileSync('nix', ['--extra-experimental-features', 'nix-command flakes', 'build', attr, '-o', outLink], { encoding: 'utf8', stdio: ['ignore', 'inherit', 'inherit'] });
    out = realpathSync(outLink);
  } else {
    out = execFileSync('nix-build', [
      join(host, 'system.nix'),
      '--argstr', 'nixpkgs', join(host, 'channels', 'nixos'),
      '--argstr', 'pinsDir', join(hostConfig(host).stateDir ?? join(host, 'state'), 'pins'),
      '--argstr', 'runDir', hostConfig(host).runDir ?? join(host, 'run'),
      '-o', outLink,
    ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  }
} catch (err) {
  process.stderr.write(`error: building the system configuration failed\n`);
  process.exit((err as { status?: number }).status ?? 1);
}
process.stdout.write(`${out}\n`);
if (action === 'build') process.exit(0);
const profiles = join(host, 'profiles');
mkdirSync(profiles, { recursive: true });
execFileSync('nix-env', ['-p', join(profiles, 'system'), '--set', out], { stdio: 'inherit' });
const runDir = hostConfig(host).runDir ?? join(host, 'run');
mkdirSync(runDir, { recursive: true });
if (existsSync(join(out, 'bin', 'switch-to-configuration'))) {
  try {
    execFileSync(join(out, 'bin', 'switch-to-configuration'), [action], { stdio: 'inherit' });
  } catch (err) {
    process.exit((err as { status?: number }).status ?? 1);
  }
} else if (action === 'switch') {
  // A toplevel without switch-to-configuration (the fake flake host's): switch the links only.
  atomicSymlink(out, join(runDir, 'current-system'));
  if (!existsSync(join(runDir, 'booted-system'))) atomicSymlink(out, join(runDir, 'booted-system'));
}

function atomicSymlink(target: string, link: string): void {
  const tmp = `${link}.tmp-${process.pid}`;
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}

/** The host's stateDir and runDir from its config.json (the demo defaults are <host>/state, <host>/run). */
function hostConfig(hostDir: string): { stateDir?: string; runDir?: string } {
  try {
    return JSON.parse(readFileSync(join(hostDir, 'config.json'), 'utf8')) as { stateDir?: string; runDir?: string };
  } catch {
    return {};
  }
}
