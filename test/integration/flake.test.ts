// Flake mode against real Nix 2.8 flakes, offline: a fake nixpkgs flake in a git repository
// (each revision a commit) and a host flake (git+file:// inputs) with two desync inputs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { cp, mkdtemp, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFlakeHost, lockedRevs, type FlakeHost } from '../../src/demo/fake-flake.js';
import type { FakeRevision } from '../../src/demo/fake-nixpkgs.js';
import { resolveNewest, NIX_FLAKE_FLAGS } from '../../src/source/flake-fetch.js';
import { readLockFile, rootInput } from '../../src/source/flake-lock.js';
import { runCommand } from '../../src/util/exec.js';
import { requireTools } from '../helpers/tools.js';
import { NIX_ENV, runCli } from '../helpers/cli.js';

const HAVE_NIX = requireTools('nix', 'nix-build', 'nix-store', 'nix-env', 'git');
const env = { ...process.env, ...NIX_ENV };

const REVS: FakeRevision[] = [
  { label: 'rev1' },
  { label: 'rev2', broken: ['home-manager'] },
  { label: 'rev3', broken: ['home-manager'] },
  { label: 'rev4' },
  { label: 'rev5', broken: ['hello'] }, // breaks the system itself
];

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'desync-flake-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function newHost(name: string, extra?: Record<string, unknown>): Promise<FlakeHost> {
  return createFlakeHost(join(root, name), {
    revisions: REVS,
    desyncs: {
      'home-manager': { requireBuilds: ['home-manager'], maxLagRebuilds: 2 },
      synapse: { requireBuilds: ['matrix-synapse', 'python3Packages.requests'] },
    },
    systemPackages: { 'home-manager': 'home-manager', synapse: 'matrix-synapse' },
    otherInputs: ['unrelated'],
    extraConfig: extra,
    env,
  });
}

describe.skipIf(!HAVE_NIX)('flake mode with real Nix flakes', () => {
  it('fetch resolves the original reference to exactly what nix flake lock --update-input locks, without touching the host lock', async () => {
    const host = await newHost('fetch');
    const before = await readFile(host.lockFile);
    const rev2 = await host.useRevision('rev2');
    const { lock } = await readLockFile(host.lockFile);
    const main = rootInput(lock, 'nixpkgs');
    if (main.kind !== 'node') throw new Error('fixture has no nixpkgs node');
    const got = await resolveNewest(main.value.original!, { run: runCommand, env, timeoutMs: 120_000 });
    expect(got.rev).toBe(rev2);
    expect(got.storePath).toMatch(/^\/nix\/store\/[0-9a-z]{32}-source$/);
    expect(await readFile(join(got.storePath, 'default.nix'), 'utf8')).toMatch(/Fake nixpkgs revision rev2/);
    expect(await readFile(host.lockFile)).toEqual(before);

    // The reference: Nix's own --update-input on a copy of the host flake.
    const copy = join(root, 'fetch-copy');
    await cp(host.flakeDir, copy, { recursive: true });
    execFileSync('nix', [...NIX_FLAKE_FLAGS, 'flake', 'lock', '--update-input', 'nixpkgs', copy], { env, stdio: 'pipe' });
    const ref = rootInput((await readLockFile(join(copy, 'flake.lock'))).lock, 'nixpkgs');
    expect(ref.kind === 'node' && ref.value.locked).toEqual(got.locked);
    expect(got).toMatchObject({ narHash: (got.locked as { narHash: string }).narHash, lastModified: expect.any(Number) });
  });

  it('fetch failure (the source is gone) is E_FETCH naming the reference; the host lock is untouched', async () => {
    const host = await newHost('fetch-fail');
    const before = await readFile(host.lockFile);
    await rename(host.nixpkgsRepo, host.nixpkgsRepo + '.gone');
    const { lock } = await readLockFile(host.lockFile);
    const main = rootInput(lock, 'nixpkgs');
    if (main.kind !== 'node') throw new Error('fixture has no nixpkgs node');
    await expect(resolveNewest(main.value.original!, { run: runCommand, env, timeoutMs: 120_000 }))
      .rejects.toMatchObject({ code: 'E_FETCH', message: expect.stringMatching(/resolving git:file:\/\/.*nixpkgs failed: nix exited with code 1/) });
    expect(await readFile(host.lockFile)).toEqual(before);
  });

  it('check-config reads <flake.path>/flake.lock: the fixture passes; an unknown input, a follows or no lock file is 78 naming the field', async () => {
    const host = await newHost('check');
    const ok = await runCli(['check-config', '--config', host.configPath]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).desyncs.synapse.input).toBe('nixpkgs-synapse');

    await host.writeConfig({ desyncs: { ...(host.config.desyncs as object), typo: { input: 'nixpkgs-tyop' } } });
    const unknown = await runCli(['check-config', '--config', host.configPath]);
    expect(unknown.code).toBe(78);
    expect(unknown.stderr).toMatch(/\$\.desyncs\.typo\.input: .*flake\.lock: input "nixpkgs-tyop" is not an input of the flake in its flake\.lock \(inputs: nixpkgs, nixpkgs-home-manager, nixpkgs-synapse, unrelated\)/);
    // upgrade refuses the same config before doing anything.
    const up = await runCli(['upgrade', '--config', host.configPath]);
    expect(up.code).toBe(78);
    expect(up.stderr).toMatch(/nixpkgs-tyop/);

    await host.writeConfig({ desyncs: { synapse: {} }, flake: { ...(host.config.flake as object), input: 'nixpkgs-nope' } });
    const main = await runCli(['check-config', '--config', host.configPath]);
    expect(main.code).toBe(78);
    expect(main.stderr).toMatch(/\$\.flake\.input: .*input "nixpkgs-nope" is not an input/);

    await host.writeConfig({ flake: { ...(host.config.flake as object), input: 'nixpkgs' } });
    const lock = JSON.parse(await readFile(host.lockFile, 'utf8'));
    lock.nodes.root.inputs['nixpkgs-synapse'] = ['nixpkgs'];
    await writeFile(host.lockFile, JSON.stringify(lock, null, 2) + '\n');
    const follows = await runCli(['check-config', '--config', host.configPath]);
    expect(follows.code).toBe(78);
    expect(follows.stderr).toMatch(/\$\.desyncs\.synapse\.input: .*follows "nixpkgs": it must be locked on its own/);

    // No lock file: check-config may run where the host's files are absent (a warning);
    // upgrade cannot run without it (78).
    await rm(host.lockFile);
    const none = await runCli(['check-config', '--config', host.configPath]);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stderr).toMatch(/warning: .*flake\.lock cannot be read here; flake inputs are checked when upgrade starts/);
    const noneUp = await runCli(['upgrade', '--config', host.configPath]);
    expect(noneUp.code).toBe(78);
    expect(noneUp.stderr).toMatch(/\$\.flake\.path: .*flake\.lock: cannot be read: ENOENT.*run nix flake lock in/);
    // A lock that exists but is not JSON is refused by check-config too.
    await writeFile(host.lockFile, 'garbage');
    const broken = await runCli(['check-config', '--config', host.configPath]);
    expect(broken.code).toBe(78);
    expect(broken.stderr).toMatch(/\$\.flake\.path: .*flake\.lock: not valid JSON/);
  });

  it('the host flake builds with plain nix build (pure evaluation, no --impure), each desync from its own input', async () => {
    const host = await newHost('pure');
    const revs = await lockedRevs(host.lockFile);
    expect(new Set(Object.values(revs))).toEqual(new Set([host.revOf('rev1')]));
    const out = execFileSync('nix', [...NIX_FLAKE_FLAGS, 'build', '--no-link', '--json', `${host.flakeDir}#nixosConfigurations.${host.hostName}.config.system.build.toplevel`], { env, encoding: 'utf8' });
    const toplevel = (JSON.parse(out) as Array<{ outputs: { out: string } }>)[0]!.outputs.out;
    expect(await readFile(join(toplevel, 'packages'), 'utf8')).toMatch(/hello-rev1[\s\S]*home-manager-rev1[\s\S]*matrix-synapse-rev1/);
  });
});
