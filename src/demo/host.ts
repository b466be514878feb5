// A self-contained host for the demo and the integration tests: a channel symlink that moves
// between fake nixpkgs revisions, a fake NixOS configuration, and real state/profile dirs.
import { chmod, mkdir, writeFile, rename, symlink, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { FAKE_CONFIGURATION_EXPR, FAKE_SWITCH_SCRIPT, fakeSystemExpr, writeFakeNixpkgs, type FakeRevision } from './fake-nixpkgs.js';

// Compiled script next to this module; from TS sources (vitest) the built copy in dist/.
export const FAKE_REBUILD = import.meta.url.endsWith('.ts')
  ? fileURLToPath(new URL('../../dist/src/demo/fake-nixos-rebuild.js', import.meta.url))
  : fileURLToPath(new URL('./fake-nixos-rebuild.js', import.meta.url));

/**
 * A stand-in for `systemctl` on hosts without systemd (demo and tests), printing what the real
 * one prints for the two calls the health gate makes (a shell script: as quick as the real one):
 *   systemctl list-units --failed --plain --no-legend --no-pager   UNIT LOAD ACTIVE SUB DESCRIPTION
 *   systemctl status --no-pager --full --lines=N -- UNIT            exit 3 for a failed unit
 * Failed units: those the fake switch-to-configuration wrote to <runDir>/failed-units, plus
 * those written to <runDir>/failed-units.static (failed before any activation).
 */
export function fakeSystemctlScript(runDir: string): string {
  return `#!/bin/sh
run=${JSON.stringify(runDir)}
failed() { cat "$run/failed-units.static" "$run/failed-units" 2>/dev/null | sed '/^$/d' | sort -u; }
case "$1" in
  list-units)
    failed | while read -r u; do printf '%-40s loaded failed failed %s (fake unit)\\n' "$u" "$u"; done
    exit 0 ;;
  status)
    for u; do :; done
    if failed | grep -qxF -- "$u"; then
      printf '× %s - %s (fake unit)\\n     Loaded: loaded (/etc/systemd/system/%s; enabled; preset: enabled)\\n     Active: failed (Result: exit-code)\\n\\n' "$u" "$u" "$u"
      printf 'Nov 30 12:00:00 demo %s[4242]: fatal: cannot load its configuration (fake failure)\\n' "$u"
      printf "Nov 30 12:00:00 demo systemd[1]: %s: Main process exited, code=exited, status=1/FAILURE\\n" "$u"
      printf "Nov 30 12:00:00 demo systemd[1]: %s: Failed with result 'exit-code'.\\n" "$u"
      exit 3
    fi
    printf '● %s - %s (fake unit)\\n     Active: active (running)\\n' "$u" "$u"
    exit 0 ;;
  *) echo "Unknown command verb '$1' (the fake systemctl knows list-units --failed and status)." >&2; exit 1 ;;
esac
`;
}

export interface DemoHostOptions {
  revisions: FakeRevision[];
  /** Desync config objects keyed by name (written into config.json as is). */
  desyncs: Record<string, Record<string, unknown>>;
  /** Package each desync contributes to the fake system: desync name → attribute. */
  systemPackages: Record<string, string>;
  extraConfig?: Record<string, unknown>;
}

export interface DemoHost {
  dir: string;
  configPath: string;
  stateDir: string;
  profilesDir: string;
  runDir: string;
  /** Holds the host's stand-in `systemctl`: put it first on PATH when running the CLI. */
  binDir: string;
  /** PATH with binDir first. */
  path: string;
  channelLink: string;
  /** NIX_PATH for the real nixos-rebuild without a flake: `nixpkgs` (the channel link) and `nixos-config`. */
  nixPath: string;
  useRevision(label: string): Promise<void>;
  writeConfig(patch?: Record<string, unknown>): Promise<void>;
  config: Record<string, unknown>;
}

export async function createDemoHost(dir: string, opts: DemoHostOptions): Promise<DemoHost> {
  await mkdir(join(dir, 'revs'), { recursive: true });
  await mkdir(join(dir, 'channels'), { recursive: true });
  for (const r of opts.revisions) await writeFakeNixpkgs(join(dir, 'revs', r.label), r);
  await writeFile(join(dir, 'system.nix'), fakeSystemExpr(opts.systemPackages));
  await writeFile(join(dir, 'switch-to-configuration.sh'), FAKE_SWITCH_SCRIPT);
  await writeFile(join(dir, 'configuration.nix'), FAKE_CONFIGURATION_EXPR);
  const binDir = join(dir, 'bin');
  await mkdir(binDir, { recursive: true });
  await writeFile(join(binDir, 'systemctl'), fakeSystemctlScript(join(dir, 'run')));
  await chmod(join(binDir, 'systemctl'), 0o755);
  const rebuild = (action: string): string[] => [process.execPath, FAKE_REBUILD, action, '--host', dir];
  const host: DemoHost = {
    dir,
    configPath: join(dir, 'config.json'),
    stateDir: join(dir, 'state'),
    profilesDir: join(dir, 'profiles'),
    runDir: join(dir, 'run'),
    binDir,
    path: `${binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    channelLink: join(dir, 'channels', 'nixos'),
    nixPath: `nixpkgs=${join(dir, 'channels', 'nixos')}:nixos-config=${join(dir, 'configuration.nix')}`,
    config: {},
    async useRevision(label) {
      const tmp = `${host.channelLink}.tmp`;
      await rm(tmp, { force: true });
      await symlink(join(dir, 'revs', label), tmp);
      await rename(tmp, host.channelLink);
    },
    async writeConfig(patch = {}) {
      host.config = { ...host.config, ...patch };
      await writeFile(host.configPath, JSON.stringify(host.config, null, 2) + '\n');
    },
  };
  await mkdir(host.profilesDir, { recursive: true });
  await mkdir(host.runDir, { recursive: true });
  host.config = {
    nixpkgs: host.channelLink,
    channel: { name: 'nixos', update: false },
    desyncs: opts.desyncs,
    system: { build: rebuild('build') },
    health: { settle: '0s' },
    stateDir: host.stateDir,
    profilesDir: host.profilesDir,
    runDir: host.runDir,
    timeouts: { channel: '2m', build: '10m', check: '2m', system: '10m', health: '2m' },
    ...opts.extraConfig,
  };
  await host.writeConfig();
  if (opts.revisions[0]) await host.useRevision(opts.revisions[0].label);
  return host;
}
