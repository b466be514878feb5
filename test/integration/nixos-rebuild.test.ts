// The loop with nixpkgs' real nixos-rebuild (test/fixtures/nixos-rebuild, vendored unmodified):
// the bash nixos-rebuild.sh and nixos-rebuild-ng, each as `nixos-rebuild` on PATH, at the
// default system.build, in channel and flake mode, against real Nix and the fake nixpkgs
// (src/demo). Every Nix call is logged by test-only PATH shims (test/helpers/nixos-rebuild.ts).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createDemoHost, fakeSystemctlScript, type DemoHost } from '../../src/demo/host.js';
import { createFlakeHost, localSystem } from '../../src/demo/fake-flake.js';
import { gitRevisionOf } from '../../src/demo/fake-nixpkgs.js';
import { SCENARIO_REVS } from '../helpers/revisions.js';
import { inCi, requireTools } from '../helpers/tools.js';
import { NIX_ENV, runCli, type CliResult } from '../helpers/cli.js';
import {
  NIX_CALLS_ENV, REBUILD_KINDS, classifyNixCall, installNixosRebuild, readNixCalls, requirePython312, showNixCall, writeNixShims, type RebuildKind,
} from '../helpers/nixos-rebuild.js';

const HAVE_NIX = requireTools('nix', 'nix-build', 'nix-instantiate', 'nix-store', 'nix-env', 'git', 'bash');
const PYTHON = HAVE_NIX ? requirePython312() : null;
/** A private mount namespace with /etc/nixos of our own: root, unshare, mount, setpriv. */
const HAVE_NS = HAVE_NIX && requireTools('unshare', 'mount', 'setpriv') && requireRoot();
const WITH_ETC_NIXOS = fileURLToPath(new URL('../fixtures/bin/with-etc-nixos.sh', import.meta.url));
const DESYNCS = { 'home-manager': { requireBuilds: ['home-manager'] }, synapse: { requireBuilds: ['matrix-synapse'] } };
const SYSTEM_PACKAGES = { 'home-manager': 'home-manager', synapse: 'matrix-synapse' };

function requireRoot(): boolean {
  if (process.getuid?.() === 0) return true;
  if (inCi()) throw new Error('CI is set but the tests are not root (the stray /etc/nixos/flake.nix test needs a private mount namespace)');
  return false;
}

let root: string;
let nixPrefix: string;
const rebuildBin: Partial<Record<RebuildKind, string>> = {};
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'desync-nixos-rebuild-'));
  if (!HAVE_NIX) return;
  nixPrefix = await writeNixShims(join(root, 'nix'));
  for (const kind of REBUILD_KINDS) {
    if (kind === 'ng' && PYTHON === null) continue;
    rebuildBin[kind] = await installNixosRebuild(kind, join(root, `nixos-rebuild-${kind}`), { nixPrefix, python: PYTHON });
  }
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The CLI's env: the real nixos-rebuild, then the Nix shims, then the host's systemctl stand-in. */
function envFor(kind: RebuildKind, binDir: string, calls: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: `${rebuildBin[kind]}:${nixPrefix}/bin:${binDir}:${process.env.PATH}`, [NIX_CALLS_ENV]: calls, ...extra };
}

/** Runs `upgrade` and returns its result and the Nix calls it made, split by kind. */
async function counted(configPath: string, env: NodeJS.ProcessEnv, wrap: string[] = []): Promise<{ r: CliResult; evals: string[][]; fetches: string[][]; all: string[][] }> {
  const calls = env[NIX_CALLS_ENV]!;
  await writeFile(calls, '');
  const r = await runCli(['upgrade', '--config', configPath], env, wrap);
  const all = await readNixCalls(calls);
  return { r, all, evals: all.filter((c) => classifyNixCall(c) === 'eval'), fetches: all.filter((c) => classifyNixCall(c) === 'fetch') };
}

const show = (calls: string[][]): string => calls.map(showNixCall).join('\n');
const builtToplevel = (stdout: string): string | undefined => /^system +.* ok → (\/nix\/store\/\S+)/m.exec(stdout)?.[1];

async function channelHost(name: string): Promise<DemoHost> {
  const host = await createDemoHost(join(root, name), { revisions: SCENARIO_REVS, desyncs: DESYNCS, systemPackages: SYSTEM_PACKAGES });
  // No system.build: the default, with `nixos-rebuild` from PATH.
  await host.writeConfig({ system: {} });
  return host;
}

describe.skipIf(!HAVE_NIX)("the loop with nixpkgs' real nixos-rebuild (default system.build)", () => {
  for (const kind of REBUILD_KINDS) {
    describe.skipIf(kind === 'ng' && PYTHON === null)(`${kind === 'bash' ? 'nixos-rebuild.sh (bash)' : 'nixos-rebuild-ng (Python)'}`, () => {
      it('channel mode: exactly 2 evaluations per run (the gate, one nix-build of <nixpkgs/nixos>); a failing desync stays on its pin in the built system', async () => {
        const host = await channelHost(`channel-${kind}`);
        const env = envFor(kind, host.binDir, join(host.dir, 'nix-calls'), { NIX_PATH: host.nixPath });
        for (const rev of ['rev1', 'rev2']) {
          await host.useRevision(rev);
          const { r, evals, all } = await counted(host.configPath, env);
          expect(r.code, r.stdout + r.stderr).toBe(0);
          expect(r.stdout).toMatch(/^system +nixos-rebuild build --no-flake --no-build-nix ok → \/nix\/store\/\S+-nixos-system-demo /m);
          expect(evals.map(showNixCall), show(all)).toHaveLength(2);
          expect(showNixCall(evals[0]!)).toMatch(/^nix-instantiate --eval --strict --json --read-write-mode -E /); // the gate
          // The system build, as each script issues it (bash: -A system -k; ng: --attr …toplevel).
          expect(showNixCall(evals[1]!)).toBe(kind === 'bash' ? 'nix-build <nixpkgs/nixos> -A system -k' : 'nix-build <nixpkgs/nixos> --attr config.system.build.toplevel');
          expect(all.some((c) => c.join(' ').includes('config.nix.package'))).toBe(false);
        }
        // The real nixos-rebuild built the configuration with the pins: home-manager stayed on rev1.
        const packages = await readFile(join(host.profilesDir, 'system', 'packages'), 'utf8');
        expect(packages).toMatch(/hello-rev2[\s\S]*home-manager-rev1[\s\S]*matrix-synapse-rev2/);
        const st = JSON.parse((await runCli(['status', '--config', host.configPath, '--json'])).stdout);
        expect(st.system.sources.desyncs['home-manager']).toMatchObject({ revision: gitRevisionOf('rev1'), desyncAge: 1 });
      });

      it('flake mode (nixos-rebuild build --flake <path>#<host>): exactly 2 evaluations per run (the gate, one nix build); the fetch evaluates no outputs', async () => {
        const host = await createFlakeHost(join(root, `flake-${kind}`), {
          revisions: SCENARIO_REVS, desyncs: DESYNCS, systemPackages: SYSTEM_PACKAGES, switchable: true, env: { ...process.env, ...NIX_ENV },
        });
        const binDir = join(host.dir, 'bin');
        await mkdir(binDir, { recursive: true });
        await writeFile(join(binDir, 'systemctl'), fakeSystemctlScript(host.runDir));
        await chmod(join(binDir, 'systemctl'), 0o755);
        // The defaults: system.build nixos-rebuild build --flake, system.activate "switch".
        await host.writeConfig({ system: {}, health: { settle: '0s' } });
        const env = envFor(kind, binDir, join(host.dir, 'nix-calls'));
        for (const rev of ['rev1', 'rev2']) {
          await host.useRevision(rev);
          const { r, evals, fetches, all } = await counted(host.configPath, env);
          expect(r.code, r.stdout + r.stderr).toBe(0);
          expect(r.stdout).toMatch(new RegExp(`^system +nixos-rebuild build .*--flake ${host.flakeDir}#demo.* ok → /nix/store/\\S+-nixos-system-demo `, 'm'));
          expect(evals.map(showNixCall), show(all)).toHaveLength(2);
          expect(showNixCall(evals[0]!)).toMatch(/^nix-instantiate --eval --strict --json --read-write-mode -E /);
          expect(showNixCall(evals[1]!)).toMatch(new RegExp(`^nix --extra-experimental-features nix-command flakes build ${kind === 'ng' ? '--print-out-paths ' : ''}.*${host.flakeDir}#nixosConfigurations\\."demo"\\.config\\.system\\.build\\.toplevel`));
          // Resolving the followed input locks a generated flake with that one input.
          expect(fetches.length, show(all)).toBeGreaterThan(0);
          for (const f of fetches) expect(showNixCall(f)).toMatch(/ flake (archive|lock|metadata) /);
        }
        const packages = await readFile(join(host.profilesDir, 'system', 'packages'), 'utf8');
        expect(packages).toMatch(/hello-rev2[\s\S]*home-manager-rev1[\s\S]*matrix-synapse-rev2/);
      });

      it.skipIf(!HAVE_NS)('channel mode never builds a stray /etc/nixos/flake.nix (private mount namespace, no capabilities); the old default ["nixos-rebuild", "build"] did', async () => {
        const host = await channelHost(`stray-${kind}`);
        const etcNixos = join(host.dir, 'etc-nixos');
        await mkdir(etcNixos);
        // A flake whose system anyone would recognise, for this host name (as nixos-rebuild picks it).
        const token = randomBytes(6).toString('hex');
        await writeFile(join(etcNixos, 'flake.nix'), `{
  outputs = { self }: {
    nixosConfigurations.${JSON.stringify(hostname())}.config.system.build.toplevel = derivation {
      name = "STRAY-etc-nixos-flake-${token}";
      system = ${JSON.stringify(localSystem())};
      builder = "/bin/sh";
      PATH = "/usr/bin:/bin";
      args = [ "-c" "mkdir -p $out/bin; echo stray > $out/STRAY" ];
    };
  };
}
`);
        const strayPaths = async (): Promise<string[]> => (await readdir('/nix/store')).filter((n) => n.includes(token));
        // Root without capabilities cannot switch to the nixbld users: builds run as root itself.
        const env = envFor(kind, host.binDir, join(host.dir, 'nix-calls'), { NIX_PATH: host.nixPath, NIX_CONFIG: `${NIX_ENV.NIX_CONFIG}\nbuild-users-group =` });
        const ns = (n: number): string[] => ['unshare', '--mount', '--propagation', 'private', '--', WITH_ETC_NIXOS, etcNixos, join(host.dir, `ns-${n}`)];

        // The default: the channel configuration with the pins, 2 evaluations, nothing of the stray flake.
        await host.useRevision('rev1');
        const def = await counted(host.configPath, env, ns(1));
        expect(def.r.code, def.r.stdout + def.r.stderr).toBe(0);
        expect(builtToplevel(def.r.stdout)).toMatch(/-nixos-system-demo$/);
        expect(def.evals.map(showNixCall), show(def.all)).toHaveLength(2);
        expect(def.all.some((c) => c.join(' ').includes('/etc/nixos'))).toBe(false);
        expect(await strayPaths()).toEqual([]);

        // The old default (an explicit system.build still works as written): nixos-rebuild takes
        // the stray flake for the system. This is what the default's --no-flake prevents.
        await host.writeConfig({ system: { build: ['nixos-rebuild', 'build'], activate: null } });
        await host.useRevision('rev4');
        const old = await counted(host.configPath, env, ns(2));
        expect(old.r.code, old.r.stdout + old.r.stderr).toBe(0);
        expect(builtToplevel(old.r.stdout)).toMatch(new RegExp(`-STRAY-etc-nixos-flake-${token}$`));
        expect(await strayPaths()).not.toEqual([]);

        // …and without a flake there, the bash one evaluates config.nix.package first (3
        // evaluations per run); ng never builds Nix.
        await rm(join(etcNixos, 'flake.nix'));
        await rm(join(etcNixos, 'flake.lock'), { force: true });
        await host.useRevision('rev1');
        const noFlake = await counted(host.configPath, env, ns(3));
        expect(noFlake.r.code, noFlake.r.stdout + noFlake.r.stderr).toBe(0);
        expect(builtToplevel(noFlake.r.stdout)).toMatch(/-nixos-system-demo$/);
        const nixPackage = noFlake.evals.filter((c) => c.join(' ').includes('config.nix.package'));
        expect(noFlake.evals, show(noFlake.all)).toHaveLength(kind === 'bash' ? 3 : 2);
        expect(nixPackage.map(showNixCall)).toEqual(kind === 'bash' ? [expect.stringMatching(/^nix-instantiate <nixpkgs\/nixos> .*-A config\.nix\.package\.out/)] : []);
      });
    });
  }
});
