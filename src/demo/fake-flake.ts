// A flake host for the demo and the tests, offline: the fake nixpkgs as a flake in a git
// repository (each revision a commit), and a host flake (a git repository, like /etc/nixos)
// whose system takes its main packages from `nixpkgs` and each desync's package from the
// desync's own input `nixpkgs-<name>` — pure evaluation, no pin file, no --impure.
import { execaSync } from 'execa';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FAKE_SWITCH_SCRIPT, fakeNixpkgsExpr, type FakeRevision } from './fake-nixpkgs.js';
import { FAKE_REBUILD, fakeSystemctlScript } from './host.js';

const FLAKES = ['--extra-experimental-features', 'nix-command flakes'];
const GIT_ID = ['-c', 'user.name=nixos-desync fixture', '-c', 'user.email=fixture@nixos-desync.invalid', '-c', 'commit.gpgsign=false'];

export interface FlakeHostOptions {
  revisions: FakeRevision[];
  /** Desync config objects keyed by name (written into config.json as is). */
  desyncs: Record<string, Record<string, unknown>>;
  /** Package each desync contributes to the system: desync name → attribute. */
  systemPackages: Record<string, string>;
  /** nixosConfigurations attribute (flake.host). */
  hostName?: string;
  /** Extra root inputs the loop must never touch (name → revision label they are locked at). */
  otherInputs?: string[];
  /** The toplevel carries the fake switch-to-configuration (hostSystemNix), for system.activate "switch". */
  switchable?: boolean;
  extraConfig?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
}

export interface FlakeHost {
  dir: string;
  /** The fake nixpkgs git repository every input points at (git+file://). */
  nixpkgsRepo: string;
  /** The host flake (flake.path). */
  flakeDir: string;
  lockFile: string;
  hostName: string;
  configPath: string;
  stateDir: string;
  profilesDir: string;
  runDir: string;
  /** Holds the host's stand-in `systemctl` (host.ts): first on PATH for the health gate's failed units. */
  binDir: string;
  /** PATH with binDir first. */
  path: string;
  config: Record<string, unknown>;
  /** Commits revision `label` to the fake nixpkgs repository (what `nixos-unstable` moving is). */
  useRevision(label: string): Promise<string>;
  /** git rev of the fake nixpkgs commit made for `label` (newest one with that label). */
  revOf(label: string): string;
  writeConfig(patch?: Record<string, unknown>): Promise<void>;
  git(...args: string[]): string;
}

function nixStr(s: string): string {
  return JSON.stringify(s).replace(/\$\{/g, '\\${');
}

/** The Nix system string of this machine (what builtins.currentSystem says in impure mode). */
export function localSystem(): string {
  const arch = process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : process.arch;
  return `${arch}-linux`;
}

export function hostFlakeNix(nixpkgsUrl: string, hostName: string, desyncInputs: Record<string, string>, otherInputs: string[]): string {
  const inputs = ['nixpkgs', ...Object.values(desyncInputs), ...otherInputs].map((i) => `  inputs.${i}.url = ${nixStr(nixpkgsUrl)};`).join('\n');
  return `# Fake NixOS host flake (nixos-desync demo/test fixture).
{
  description = "nixos-desync fixture host";
${inputs}
  outputs = inputs: {
    nixosConfigurations.${nixStr(hostName)} = import ./system.nix { inherit inputs; };
  };
}
`;
}

/**
 * `switchable` (a run dir): the toplevel also carries the fake `bin/switch-to-configuration`
 * (fake-nixpkgs.ts) recording activations there, so the default `system.activate` ("switch")
 * can activate it, as on the channel demo host.
 */
export function hostSystemNix(system: string, desyncs: Record<string, { input: string; attr: string }>, switchable?: { runDir: string }): string {
  const lines = Object.entries(desyncs)
    .map(([name, d]) => `    # desync ${name}\n    (builtins.getAttr ${nixStr(d.attr)} (import (builtins.getAttr ${nixStr(d.input)} inputs) { inherit system; }))`)
    .join('\n');
  return `# The fake NixOS configuration: main packages from inputs.nixpkgs, each desync's package
# from its own input. Pure: no pin file, no builtins.currentSystem, no absolute paths.
{ inputs }:
let
  system = ${nixStr(system)};
  pkgs = import inputs.nixpkgs { inherit system; };
  packages = [
    pkgs.hello
${lines}
  ];
in
{
  config.system.build.toplevel = derivation {
    name = "nixos-system-demo";
    inherit system packages;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    kernel = pkgs.linux;
${switchable ? `    runDir = ${nixStr(switchable.runDir)};
    switchScript = builtins.readFile ./switch-to-configuration.sh;
` : ''}    args = [ "-c" ''
      mkdir -p $out
      for p in $packages; do echo $p >> $out/packages; done
      ln -s $kernel $out/kernel
      ln -s $kernel $out/initrd
      ln -s $kernel $out/kernel-modules
${switchable ? `      mkdir -p $out/bin
      printf '%s' "$switchScript" | sed -e "s|@out@|$out|g" -e "s|@runDir@|$runDir|g" > $out/bin/switch-to-configuration
      chmod +x $out/bin/switch-to-configuration
` : ''}    '' ];
  };
}
`;
}

const FAKE_NIXPKGS_FLAKE = '# Fake nixpkgs as a flake: `import inputs.nixpkgs { system = …; }` reads default.nix.\n{ outputs = { self }: { }; }\n';

export async function createFlakeHost(dir: string, opts: FlakeHostOptions): Promise<FlakeHost> {
  const env = opts.env ?? process.env;
  const hostName = opts.hostName ?? 'demo';
  const nixpkgsRepo = join(dir, 'nixpkgs');
  const flakeDir = join(dir, 'etc-nixos');
  const revs = new Map(opts.revisions.map((r) => [r.label, r]));
  const revByLabel = new Map<string, string>();
  const git = (cwd: string, ...args: string[]): string =>
    execaSync('git', [...GIT_ID, ...args], { cwd, env, extendEnv: false, stdin: 'ignore' }).stdout.trim();

  await mkdir(nixpkgsRepo, { recursive: true });
  await mkdir(flakeDir, { recursive: true });
  git(nixpkgsRepo, 'init', '-q', '-b', 'master');
  await writeFile(join(nixpkgsRepo, 'flake.nix'), FAKE_NIXPKGS_FLAKE);

  const desyncInputs: Record<string, string> = {};
  for (const [name, d] of Object.entries(opts.desyncs)) desyncInputs[name] = typeof d.input === 'string' ? d.input : `nixpkgs-${name}`;

  const host: FlakeHost = {
    dir,
    nixpkgsRepo,
    flakeDir,
    lockFile: join(flakeDir, 'flake.lock'),
    hostName,
    configPath: join(dir, 'config.json'),
    stateDir: join(dir, 'state'),
    profilesDir: join(dir, 'profiles'),
    runDir: join(dir, 'run'),
    binDir: join(dir, 'bin'),
    path: `${join(dir, 'bin')}:${env.PATH ?? '/usr/bin:/bin'}`,
    config: {},
    async useRevision(label) {
      const rev = revs.get(label);
      if (!rev) throw new Error(`unknown fake revision ${label}`);
      await writeFile(join(nixpkgsRepo, 'default.nix'), fakeNixpkgsExpr(rev));
      git(nixpkgsRepo, 'add', '-A');
      git(nixpkgsRepo, 'commit', '-q', '--allow-empty', '-m', label);
      const sha = git(nixpkgsRepo, 'rev-parse', 'HEAD');
      revByLabel.set(label, sha);
      return sha;
    },
    revOf(label) {
      const sha = revByLabel.get(label);
      if (!sha) throw new Error(`revision ${label} was never committed`);
      return sha;
    },
    async writeConfig(patch = {}) {
      host.config = { ...host.config, ...patch };
      await writeFile(host.configPath, JSON.stringify(host.config, null, 2) + '\n');
    },
    git: (...args) => git(flakeDir, ...args),
  };

  if (!opts.revisions[0]) throw new Error('a flake host needs at least one revision');
  await host.useRevision(opts.revisions[0].label);

  const systemDesyncs = Object.fromEntries(Object.entries(opts.systemPackages).map(([name, attr]) => [name, { input: desyncInputs[name] ?? `nixpkgs-${name}`, attr }]));
  await writeFile(join(flakeDir, 'flake.nix'), hostFlakeNix(`git+file://${nixpkgsRepo}`, hostName, desyncInputs, opts.otherInputs ?? []));
  await writeFile(join(flakeDir, 'system.nix'), hostSystemNix(localSystem(), systemDesyncs, opts.switchable ? { runDir: host.runDir } : undefined));
  if (opts.switchable) await writeFile(join(flakeDir, 'switch-to-configuration.sh'), FAKE_SWITCH_SCRIPT);
  git(flakeDir, 'init', '-q', '-b', 'master');
  git(flakeDir, 'add', 'flake.nix', 'system.nix', ...(opts.switchable ? ['switch-to-configuration.sh'] : []));
  // `nix flake lock` locks every input to the first revision, as a fresh host would.
  execaSync('nix', [...FLAKES, 'flake', 'lock', flakeDir], { env, extendEnv: false, stdin: 'ignore', stdout: 'ignore' });
  git(flakeDir, 'add', 'flake.lock');
  git(flakeDir, 'commit', '-q', '-m', 'host flake');

  await mkdir(host.profilesDir, { recursive: true });
  await mkdir(host.runDir, { recursive: true });
  await mkdir(host.binDir, { recursive: true });
  await writeFile(join(host.binDir, 'systemctl'), fakeSystemctlScript(host.runDir));
  await chmod(join(host.binDir, 'systemctl'), 0o755);
  const rebuild = (action: string): string[] => [process.execPath, FAKE_REBUILD, action, '--host', dir, '--flake', `${flakeDir}#${hostName}`];
  host.config = {
    flake: { path: flakeDir, host: hostName, input: 'nixpkgs', commitLockFile: false },
    desyncs: opts.desyncs,
    system: { build: rebuild('build'), activate: rebuild('switch') },
    // Its toplevel has no switch-to-configuration and the host no systemctl: the argv
    // activation (nixos-rebuild switch) with the health gate's failed-units check off.
    health: { settle: '0s', failedUnits: false },
    stateDir: host.stateDir,
    profilesDir: host.profilesDir,
    runDir: host.runDir,
    timeouts: { channel: '2m', build: '10m', check: '2m', system: '10m' },
    ...opts.extraConfig,
  };
  await host.writeConfig();
  return host;
}

/** The lock node `locked.rev` of each root input of `lockFile`. */
export async function lockedRevs(lockFile: string): Promise<Record<string, string | undefined>> {
  const lock = JSON.parse(await readFile(lockFile, 'utf8')) as { nodes: Record<string, { locked?: { rev?: string } }>; root: string };
  const inputs = (lock.nodes[lock.root] as { inputs?: Record<string, string> }).inputs ?? {};
  return Object.fromEntries(Object.entries(inputs).map(([name, node]) => [name, lock.nodes[node]?.locked?.rev]));
}
