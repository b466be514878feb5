// Flake mode against real Nix 2.8 flakes, offline: a fake nixpkgs flake in a git repository
// (each revision a commit) and a host flake (git+file:// inputs) with two desync inputs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { cp, mkdtemp, readFile, readdir, rm, writeFile, rename } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { FAILPOINTS, FLAKE_FAILPOINTS } from '../../src/util/failpoint.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFlakeHost, lockedRevs, type FlakeHost } from '../../src/demo/fake-flake.js';
import { SCENARIO_REVS } from '../helpers/revisions.js';
import { resolveNewest, NIX_FLAKE_FLAGS } from '../../src/source/flake-fetch.js';
import { readLockFile, rootInput } from '../../src/source/flake-lock.js';
import { runCommand } from '../../src/util/exec.js';
import { requireTools } from '../helpers/tools.js';
import { NIX_ENV, runCli } from '../helpers/cli.js';

const HAVE_NIX = requireTools('nix', 'nix-build', 'nix-store', 'nix-env', 'git');
const env = { ...process.env, ...NIX_ENV };

const REVS = SCENARIO_REVS;

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

  // ---- whole runs ---------------------------------------------------------------------

  async function upgrade(host: FlakeHost, rev: string | null, ...flags: string[]) {
    if (rev !== null) await host.useRevision(rev);
    return runCli(['upgrade', '--config', host.configPath, ...flags]);
  }
  const lockText = (host: FlakeHost) => readFile(host.lockFile, 'utf8');
  const generations = async (host: FlakeHost) => (await readdir(host.profilesDir)).filter((n) => /^system-\d+-link$/.test(n)).sort();
  const systemPackages = (host: FlakeHost) => readFile(join(host.profilesDir, 'system', 'packages'), 'utf8');
  const pinOf = (host: FlakeHost, name: string) =>
    JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', join(host.stateDir, 'pins', `${name}.nix`)], { env, encoding: 'utf8' })) as { desyncAge: number; revision: string; path: string };
  /** The node of `input` in the lock text, as text (to compare bytes of untouched nodes). */
  const nodeText = (text: string, input: string) => {
    const lock = JSON.parse(text) as { nodes: Record<string, unknown> };
    return JSON.stringify(lock.nodes[input]);
  };
  /** Pure `nix build` of the host's toplevel (no --impure), as nixos-rebuild --flake does. */
  const pureBuild = (host: FlakeHost) => {
    const out = execFileSync('nix', [...NIX_FLAKE_FLAGS, 'build', '--no-link', '--json', `${host.flakeDir}#nixosConfigurations.${host.hostName}.config.system.build.toplevel`], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return (JSON.parse(out) as Array<{ outputs: { out: string } }>)[0]!.outputs.out;
  };

  it('follow: every input moves to the newest revision, other inputs are never touched; pins and status say the locked rev', async () => {
    const host = await newHost('follow');
    const r1 = await upgrade(host, null);
    expect(r1.code, r1.stdout + r1.stderr).toBe(0);
    expect(r1.stdout).toMatch(/fetch +input nixpkgs resolved to [0-9a-f]{40} \(unchanged\)/);
    const start = await lockText(host);
    const rev4 = await host.useRevision('rev4');
    // A dry run resolves and gates, and changes nothing.
    const dry = await runCli(['upgrade', '--config', host.configPath, '--dry-run']);
    expect(dry.code, dry.stdout + dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/dry run: flake\.lock not changed/);
    expect(await lockText(host)).toBe(start);

    const r = await upgrade(host, null, '--json');
    expect(r.code, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout);
    expect(res.candidate.revision).toBe(rev4);
    expect(res.evaluations).toBe(2); // the gate + the system build
    const revs = await lockedRevs(host.lockFile);
    expect(revs).toEqual({ nixpkgs: rev4, 'nixpkgs-home-manager': rev4, 'nixpkgs-synapse': rev4, unrelated: host.revOf('rev1') });
    expect(nodeText(await lockText(host), 'unrelated')).toBe(nodeText(start, 'unrelated'));
    // The lock is in Nix's own format: Nix rewriting it changes nothing.
    const text = await lockText(host);
    execFileSync('nix', [...NIX_FLAKE_FLAGS, 'flake', 'lock', host.flakeDir], { env, stdio: 'pipe' });
    expect(await lockText(host)).toBe(text);
    expect(pinOf(host, 'synapse')).toMatchObject({ desyncAge: 0, revision: rev4 });
    expect(pinOf(host, 'synapse').path).toBe(res.candidate.path);
    expect(await systemPackages(host)).toMatch(/hello-rev4[\s\S]*home-manager-rev4[\s\S]*matrix-synapse-rev4/);
    const st = JSON.parse((await runCli(['status', '--config', host.configPath, '--json'])).stdout);
    expect(st.desyncs.map((d: { name: string; revision: string }) => [d.name, d.revision])).toEqual([['home-manager', rev4], ['synapse', rev4]]);
  });

  it('a broken desync: its input stays on the old rev while the followed input and the others move; the toplevel really has the old package; catch-up later', async () => {
    const host = await newHost('stay');
    expect((await upgrade(host, null)).code).toBe(0);
    const start = await lockText(host);
    const rev1 = host.revOf('rev1');
    const r2 = await upgrade(host, 'rev2');
    expect(r2.code, r2.stdout + r2.stderr).toBe(0);
    expect(r2.stdout).toMatch(/home-manager: FAILED — home-manager: home-manager-rev2 failed to build/);
    const rev2 = host.revOf('rev2');
    expect(await lockedRevs(host.lockFile)).toEqual({ nixpkgs: rev2, 'nixpkgs-home-manager': rev1, 'nixpkgs-synapse': rev2, unrelated: rev1 });
    const after = await lockText(host);
    // The input that stayed behind keeps its node byte for byte.
    expect(nodeText(after, 'nixpkgs-home-manager')).toBe(nodeText(start, 'nixpkgs-home-manager'));
    expect(pinOf(host, 'home-manager')).toMatchObject({ desyncAge: 1, revision: rev1 });
    const pkgs = await systemPackages(host);
    expect(pkgs).toMatch(/hello-rev2/);
    expect(pkgs).toMatch(/home-manager-rev1/);
    expect(pkgs).toMatch(/matrix-synapse-rev2/);
    // Pure evaluation anywhere: plain nix build of the flake gives the system the loop activated.
    expect(pureBuild(host)).toBe(execFileSync('readlink', ['-f', join(host.profilesDir, 'system')], { encoding: 'utf8' }).trim());

    const r3 = await upgrade(host, 'rev3');
    expect(r3.code).toBe(0);
    expect((await lockedRevs(host.lockFile))['nixpkgs-home-manager']).toBe(rev1);
    expect(pinOf(host, 'home-manager').desyncAge).toBe(2);

    // Catch-up: the package is fixed, the desync's input follows again (lag 0).
    const r4 = await upgrade(host, 'rev4');
    expect(r4.code, r4.stdout + r4.stderr).toBe(0);
    const rev4 = host.revOf('rev4');
    expect(await lockedRevs(host.lockFile)).toEqual({ nixpkgs: rev4, 'nixpkgs-home-manager': rev4, 'nixpkgs-synapse': rev4, unrelated: rev1 });
    expect(pinOf(host, 'home-manager')).toMatchObject({ desyncAge: 0, revision: rev4 });
    expect(await systemPackages(host)).toMatch(/home-manager-rev4/);
  });

  it('breach, onBreach "fail": no system build, flake.lock byte-identical; "continue": built with the stale input, exit 1', async () => {
    for (const policy of ['fail', 'continue'] as const) {
      const host = await newHost(`breach-${policy}`, { onBreach: policy });
      for (const rev of ['rev1', 'rev2', 'rev3']) expect((await upgrade(host, rev)).code).toBe(0);
      const before = await lockText(host);
      const gens = await generations(host);
      const r = await upgrade(host, 'rev6');
      expect(r.code).toBe(1);
      // One lag number (docs/upgrade-loop.md): a run that stops before the rebuild keeps the
      // committed lag; a run that rebuilds ("continue") counts itself.
      expect(r.stdout).toMatch(policy === 'fail' ? /pin +home-manager: stays on .* BREACH: lag 2 ≥ maxLagRebuilds 2/ : /pin +home-manager: stays on .* BREACH: lag 3 > maxLagRebuilds 2/);
      const rev1 = host.revOf('rev1');
      if (policy === 'fail') {
        expect(await lockText(host)).toBe(before);
        expect(await generations(host)).toEqual(gens);
      } else {
        const rev6 = host.revOf('rev6');
        expect(await lockedRevs(host.lockFile)).toMatchObject({ nixpkgs: rev6, 'nixpkgs-home-manager': rev1, 'nixpkgs-synapse': rev6 });
        expect(await generations(host)).toHaveLength(gens.length + 1);
        expect(await systemPackages(host)).toMatch(/hello-rev6[\s\S]*home-manager-rev1/);
      }
      const doc = JSON.parse((await runCli(['status', '--config', host.configPath, '--json'])).stdout);
      expect(doc.desyncs.find((d: { name: string }) => d.name === 'home-manager')).toMatchObject({ breached: true, revision: rev1 });
    }
  });

  it('a system build failure leaves flake.lock byte-identical and creates no generation', async () => {
    const host = await newHost('system-fail');
    expect((await upgrade(host, 'rev1')).code).toBe(0);
    expect((await upgrade(host, 'rev2')).code).toBe(0);
    const before = await readFile(host.lockFile);
    const gens = await generations(host);
    const r = await upgrade(host, 'rev5');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/system build .* failed: .*; the previous pin set was restored/);
    expect(await readFile(host.lockFile)).toEqual(before);
    expect(await generations(host)).toEqual(gens);
    expect(host.git('status', '--porcelain')).toBe('M flake.lock');
  });

  it('commitLockFile: one commit touching only flake.lock, its message saying which desync followed and which stayed', async () => {
    const host = await newHost('commit', { flake: { path: join(root, 'commit', 'etc-nixos'), host: 'demo', input: 'nixpkgs', commitLockFile: true } });
    expect((await upgrade(host, null)).code).toBe(0);
    expect(host.git('rev-list', '--count', 'HEAD')).toBe('1'); // nothing moved: no commit
    // Someone's unrelated staged change stays staged and out of the loop's commit.
    await writeFile(join(host.flakeDir, 'notes.txt'), 'mine\n');
    host.git('add', 'notes.txt');
    const head = host.git('rev-parse', 'HEAD');
    const r = await upgrade(host, 'rev2');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(host.git('rev-list', '--count', `${head}..HEAD`)).toBe('1');
    expect(host.git('show', '--name-only', '--format=', 'HEAD').split('\n')).toEqual(['flake.lock']);
    const msg = host.git('log', '-1', '--format=%B');
    expect(msg).toMatch(/^flake\.lock: nixos-desync run \S+/);
    expect(msg).toMatch(new RegExp(`nixpkgs: ${host.revOf('rev1').slice(0, 12)} → ${host.revOf('rev2').slice(0, 12)}`));
    expect(msg).toMatch(new RegExp(`desync home-manager \\(nixpkgs-home-manager\\): stayed on ${host.revOf('rev1').slice(0, 12)} \\(lag 1\\)`));
    expect(msg).toMatch(new RegExp(`desync synapse \\(nixpkgs-synapse\\): followed ${host.revOf('rev2').slice(0, 12)}`));
    expect(host.git('status', '--porcelain')).toBe('A  notes.txt');
  });

  it('commitLockFile and a run killed past its commit point (before its git commit): recover makes the git commit; killed before it, git is left alone', async () => {
    const host = await newHost('commit-killed', { flake: { path: join(root, 'commit-killed', 'etc-nixos'), host: 'demo', input: 'nixpkgs', commitLockFile: true } });
    expect((await upgrade(host, null)).code).toBe(0);
    const head = host.git('rev-parse', 'HEAD');
    await host.useRevision('rev2');
    // Before the commit point: recovery restores flake.lock, nothing to commit.
    expect((await runCli(['upgrade', '--config', host.configPath], { NIXOS_DESYNC_FAILPOINT: 'after-flake-lock-write' })).signal).toBe('SIGKILL');
    expect((await runCli(['recover', '--config', host.configPath])).code).toBe(0);
    expect(host.git('rev-parse', 'HEAD')).toBe(head);
    expect(host.git('status', '--porcelain')).toBe('');
    // Past it: the committed flake.lock is in git after recovery, with a message that says how.
    const killed = await runCli(['upgrade', '--config', host.configPath], { NIXOS_DESYNC_FAILPOINT: 'after-commit' });
    expect(killed.signal).toBe('SIGKILL');
    expect(host.git('status', '--porcelain')).toBe('M flake.lock');
    const rec = await runCli(['recover', '--config', host.configPath]);
    expect(rec.code, rec.stdout + rec.stderr).toBe(0);
    expect(host.git('status', '--porcelain')).toBe('');
    expect(host.git('rev-list', '--count', `${head}..HEAD`)).toBe('1');
    expect(host.git('log', '-1', '--format=%B')).toMatch(/^flake\.lock: nixos-desync run \S+\n\nCommitted by nixos-desync recover: the run died past its commit point/);
    expect((await lockedRevs(host.lockFile)).nixpkgs).toBe(host.revOf('rev2'));
    // Nothing left to commit: recover again changes nothing.
    expect((await runCli(['recover', '--config', host.configPath])).code).toBe(0);
    expect(host.git('rev-list', '--count', `${head}..HEAD`)).toBe('1');
  });

  it('a failing desync\'s input bumped by hand is locked back to its pin for the build (state and system agree) (#18.7)', async () => {
    const host = await newHost('hand-bump');
    expect((await upgrade(host, 'rev1')).code).toBe(0);
    expect((await upgrade(host, 'rev2')).code).toBe(0); // home-manager broken: stays on rev1
    const rev1 = host.revOf('rev1');
    expect((await lockedRevs(host.lockFile))['nixpkgs-home-manager']).toBe(rev1);
    // Someone bumps the held-back input by hand to a revision no gate saw.
    const rev4 = await host.useRevision('rev4');
    execFileSync('nix', [...NIX_FLAKE_FLAGS, 'flake', 'lock', '--update-input', 'nixpkgs-home-manager', host.flakeDir], { env, stdio: 'pipe' });
    expect((await lockedRevs(host.lockFile))['nixpkgs-home-manager']).toBe(rev4);
    const r = await upgrade(host, 'rev3'); // home-manager still broken on the candidate
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/pin +home-manager: stays on /);
    expect((await lockedRevs(host.lockFile))['nixpkgs-home-manager']).toBe(rev1);
    expect(pinOf(host, 'home-manager')).toMatchObject({ revision: rev1, desyncAge: 2 });
    const pkgs = await systemPackages(host);
    expect(pkgs).toMatch(/home-manager-rev1/);
    expect(pkgs).not.toMatch(/home-manager-rev4/);
  });

  it('a flake.nix input changed without re-locking fails the run before the gate, naming the input; nothing is re-locked or built (#18.7)', async () => {
    const host = await newHost('unlocked-change');
    expect((await upgrade(host, 'rev1')).code).toBe(0);
    execFileSync('git', ['-C', host.nixpkgsRepo, 'branch', 'other'], { stdio: 'pipe' });
    const flakeNix = join(host.flakeDir, 'flake.nix');
    const text = await readFile(flakeNix, 'utf8');
    const changed = text.replace(/(inputs\.unrelated\.url = "git\+file:\/\/[^"?]+)"/, '$1?ref=other"');
    expect(changed).not.toBe(text);
    await writeFile(flakeNix, changed);
    const before = await lockText(host);
    const gens = await generations(host);
    const r = await upgrade(host, 'rev2', '--json');
    expect(r.code, r.stderr).toBe(1);
    const res = JSON.parse(r.stdout);
    expect(res.error.code).toBe('E_FLAKE_LOCK');
    expect(res.error.message).toMatch(/flake\.nix and its flake\.lock disagree .*\n +input unrelated: flake\.nix says git:file:\/\/\S+\?ref=other, flake\.lock was locked from git:file:\/\/\S+nixpkgs\n[\s\S]*nix flake lock/);
    expect(res.evaluations).toBe(0);
    expect(res.stages.gate).toBeUndefined();
    expect(await lockText(host)).toBe(before);
    expect(await generations(host)).toEqual(gens);
    // Re-locked by the user: the run goes on, with the input they chose.
    execFileSync('nix', [...NIX_FLAKE_FLAGS, 'flake', 'lock', host.flakeDir], { env, stdio: 'pipe' });
    const ok = await upgrade(host, null);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
  });

  it('commitLockFile with a git commit that fails (signing): exit 1 with git\'s output, the new system stays active and committed, flake.lock in place (#18.8)', async () => {
    const host = await newHost('commit-fails', { flake: { path: join(root, 'commit-fails', 'etc-nixos'), host: 'demo', input: 'nixpkgs', commitLockFile: true } });
    expect((await upgrade(host, 'rev1')).code).toBe(0);
    host.git('config', 'commit.gpgsign', 'true');
    host.git('config', 'gpg.program', '/bin/false');
    const head = host.git('rev-parse', 'HEAD');
    const r = await upgrade(host, 'rev2', '--json');
    expect(r.code, r.stderr).toBe(1);
    const res = JSON.parse(r.stdout);
    expect(res).toMatchObject({ result: 'failure', error: { code: 'E_FLAKE_LOCK' } });
    expect(res.error.message).toMatch(/git commit of \S+\/flake\.lock failed: .*the new flake\.lock is in place \(commit it yourself\)[\s\S]*gpg/);
    expect(r.stderr).toMatch(/git commit of \S+\/flake\.lock failed/);
    expect(host.git('rev-parse', 'HEAD')).toBe(head);
    // The new system runs and is the profile's newest generation; the state says the same.
    expect(await systemPackages(host)).toMatch(/hello-rev2/);
    expect((await lockedRevs(host.lockFile)).nixpkgs).toBe(host.revOf('rev2'));
    const st = JSON.parse((await runCli(['status', '--config', host.configPath, '--json'])).stdout);
    expect(st.system.sources.nixpkgs.revision).toBe(host.revOf('rev2'));
    expect(st.lastRun.result).toBe('failure');
  });

  it('kill -9 at every step boundary: flake.lock is always one complete version, and recovery leaves the committed one', async () => {
    const host = await newHost('kill');
    expect((await upgrade(host, 'rev1')).code).toBe(0);
    const points = [...FAILPOINTS, ...FLAKE_FAILPOINTS];
    for (const [i, fp] of points.entries()) {
      const before = await lockText(host);
      await host.useRevision(i % 2 === 0 ? 'rev2' : 'rev4');
      const killed = await runCli(['upgrade', '--config', host.configPath], { NIXOS_DESYNC_FAILPOINT: fp });
      expect(killed.signal, `${fp}: ${killed.stdout}${killed.stderr}`).toBe('SIGKILL');
      const now = await lockText(host);
      const sets = await readdir(join(host.stateDir, 'sets'));
      const candidates = await Promise.all(sets.map((id) => readFile(join(host.stateDir, 'sets', id, 'flake', 'candidate.lock'), 'utf8').catch(() => null)));
      expect([before, ...candidates], `${fp}: flake.lock is the previous or the complete candidate lock`).toContain(now);
      // Which version is committed: state.json says (the dead run's set once past its commit point).
      const state = JSON.parse(await readFile(join(host.stateDir, 'state.json'), 'utf8')) as { committed: { setId: string } };
      const committedText = (await readFile(join(host.stateDir, 'sets', state.committed.setId, 'flake', 'candidate.lock'), 'utf8').catch(() => null)) ?? before;
      const committedLock = sets.includes(state.committed.setId) && now !== before ? committedText : before;
      // The next run recovers first; its own system build fails, so flake.lock then shows
      // exactly what recovery left: the committed version.
      await host.writeConfig({ system: { build: ['/bin/false'], activate: null } });
      const rec = await runCli(['upgrade', '--config', host.configPath]);
      expect(rec.code, fp).toBe(1);
      // A run killed once it had recorded itself is not counted again (#11.6); any other dead run is recorded by the recovery.
      const recorded = ['after-record-state', 'after-history', 'after-journal-removed'].includes(fp);
      expect(rec.stdout, fp).toMatch(recorded ? /already recorded itself before it died; not counted again/ : /recovered from an interrupted run/);
      expect(await lockText(host), `${fp}: after recovery`).toBe(committedLock);
      await host.writeConfig({ system: (await newSystem(host)) });
      const next = await runCli(['upgrade', '--config', host.configPath]);
      expect(next.code, `${fp}: ${next.stdout}${next.stderr}`).toBe(0);
      expect((await lockedRevs(host.lockFile)).nixpkgs, fp).toBe(host.revOf(i % 2 === 0 ? 'rev2' : 'rev4'));
    }
  }, 300_000);
});

async function newSystem(host: FlakeHost): Promise<Record<string, unknown>> {
  const { FAKE_REBUILD } = await import('../../src/demo/host.js');
  const rebuild = (action: string): string[] => [process.execPath, FAKE_REBUILD, action, '--host', host.dir, '--flake', `${host.flakeDir}#${host.hostName}`];
  return { build: rebuild('build'), activate: rebuild('switch') };
}
