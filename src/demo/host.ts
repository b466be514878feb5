// A self-contained host for the demo and the integration tests: a channel symlink that moves
// between fake nixpkgs revisions, a fake NixOS configuration, and real state/profile dirs.
import { mkdir, writeFile, rename, symlink, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { fakeSystemExpr, writeFakeNixpkgs, type FakeRevision } from './fake-nixpkgs.js';

// Compiled script next to this module; from TS sources (vitest) the built copy in dist/.
export const FAKE_REBUILD = import.meta.url.endsWith('.ts')
  ? fileURLToPath(new URL('../../dist/src/demo/fake-nixos-rebuild.js', import.meta.url))
  : fileURLToPath(new URL('./fake-nixos-rebuild.js', import.meta.url));

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
  channelLink: string;
  useRevision(label: string): Promise<void>;
  writeConfig(patch?: Record<string, unknown>): Promise<void>;
  config: Record<string, unknown>;
}

export async function createDemoHost(dir: string, opts: DemoHostOptions): Promise<DemoHost> {
  await mkdir(join(dir, 'revs'), { recursive: true });
  await mkdir(join(dir, 'channels'), { recursive: true });
  for (const r of opts.revisions) await writeFakeNixpkgs(join(dir, 'revs', r.label), r);
  await writeFile(join(dir, 'system.nix'), fakeSystemExpr(opts.systemPackages));
  const rebuild = (action: string): string[] => [process.execPath, FAKE_REBUILD, action, '--host', dir];
  const host: DemoHost = {
    dir,
    configPath: join(dir, 'config.json'),
    stateDir: join(dir, 'state'),
    profilesDir: join(dir, 'profiles'),
    runDir: join(dir, 'run'),
    channelLink: join(dir, 'channels', 'nixos'),
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
    system: { build: rebuild('build'), activate: rebuild('switch') },
    stateDir: host.stateDir,
    profilesDir: host.profilesDir,
    runDir: host.runDir,
    timeouts: { channel: '2m', build: '10m', check: '2m', system: '10m' },
    ...opts.extraConfig,
  };
  await host.writeConfig();
  if (opts.revisions[0]) await host.useRevision(opts.revisions[0].label);
  return host;
}
