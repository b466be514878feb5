// The loop against real Nix (nix-build, nix-store, nix-env, GC roots, channels) on a fake
// nixpkgs. Everything that touches the Nix store lives in this one file so that the garbage
// collection test never races another test's unrooted build.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, readFile, readlink, readdir, rm, mkdir, cp } from 'node:fs/promises';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDemoHost, type DemoHost } from '../../src/demo/host.js';
import { gitRevisionOf } from '../../src/demo/fake-nixpkgs.js';
import { SCENARIO_REVS } from '../helpers/revisions.js';
import { requireTools } from '../helpers/tools.js';
import { NIX_ENV, runCli, startCli, gcRoots } from '../helpers/cli.js';
import { defineFaultSuite } from './faults.suite.js';
import { defineExporterDemoSuite } from './exporter-demo.suite.js';
import { defineActivationSuite } from './activation.suite.js';
import { defineIdentitySuite } from './identity.suite.js';
import { defineRollbackSuite } from './rollback.suite.js';
import { defineRebootSuite } from './reboot.suite.js';
import { defineHoldbackSuite } from './holdback.suite.js';

const HAVE_NIX = requireTools('nix-build', 'nix-instantiate', 'nix-store', 'nix-env', 'nix-channel', 'nix-collect-garbage', 'tar', 'xz');
const env = { ...process.env, ...NIX_ENV };

const REVS = SCENARIO_REVS;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'desync-real-nix-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function newHost(name: string, desyncs?: Record<string, Record<string, unknown>>, extra?: Record<string, unknown>): Promise<DemoHost> {
  return createDemoHost(join(root, name), {
    revisions: REVS,
    desyncs: desyncs ?? {
      'home-manager': { requireBuilds: ['home-manager'], maxLagRebuilds: 2 },
      synapse: { requireBuilds: ['matrix-synapse', 'python3Packages.requests'] },
    },
    systemPackages: Object.fromEntries(Object.keys(desyncs ?? { 'home-manager': 1, synapse: 1 }).map((d) => [d, d === 'synapse' ? 'matrix-synapse' : 'home-manager'])),
    extraConfig: extra,
  });
}

async function upgrade(host: DemoHost, rev: string, ...flags: string[]) {
  await host.useRevision(rev);
  return runCli(['upgrade', '--config', host.configPath, ...flags]);
}

function evalPin(host: DemoHost, name: string): { desyncAge: number; path: string; revision: string } {
  return JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', join(host.stateDir, 'pins', `${name}.nix`)], { env, encoding: 'utf8' })) as never;
}

/** True once `pid` no longer runs (gone, or a zombie nobody reaped yet). */
async function processGone(pid: number, waitMs = 3000): Promise<boolean> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    let stat = '';
    try {
      stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return true;
    }
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function generations(host: DemoHost): Promise<string[]> {
  return (await readdir(host.profilesDir)).filter((n) => /^system-\d+-link$/.test(n)).sort();
}

async function systemPackages(host: DemoHost): Promise<string> {
  return readFile(join(host.profilesDir, 'system', 'packages'), 'utf8');
}

describe.skipIf(!HAVE_NIX)('the desync upgrade loop with real Nix', () => {
  it('a package breaks: its desync stays on the old revision (lag 1) while the system upgrades; it recovers to lag 0', async () => {
    const host = await newHost('break-recover');
    const r1 = await upgrade(host, 'rev1');
    expect(r1.code, r1.stderr + r1.stdout).toBe(0);
    expect(evalPin(host, 'home-manager')).toMatchObject({ desyncAge: 0, revision: gitRevisionOf('rev1') });

    const r2 = await upgrade(host, 'rev2');
    expect(r2.code, r2.stderr + r2.stdout).toBe(0);
    expect(r2.stdout).toMatch(/home-manager: FAILED — home-manager: home-manager-rev2 failed to build \(builder exited with code 1\)/);
    expect(r2.stdout).toMatch(/error: home-manager fails to build on rev2: test suite failed/); // the build log tail
    const hm = evalPin(host, 'home-manager');
    expect(hm).toMatchObject({ desyncAge: 1, revision: gitRevisionOf('rev1') });
    expect(hm.path).toMatch(/^\/nix\/store\/[0-9a-z]{32}-rev1$/);
    expect(evalPin(host, 'synapse')).toMatchObject({ desyncAge: 0, revision: gitRevisionOf('rev2') });
    // The system upgraded: new generation, main packages from rev2, home-manager from its pin.
    expect(await generations(host)).toHaveLength(2);
    const pkgs = await systemPackages(host);
    expect(pkgs).toMatch(/hello-rev2/);
    expect(pkgs).toMatch(/home-manager-rev1/);
    expect(pkgs).toMatch(/matrix-synapse-rev2/);

    const r4 = await upgrade(host, 'rev4');
    expect(r4.code, r4.stderr + r4.stdout).toBe(0);
    expect(evalPin(host, 'home-manager')).toMatchObject({ desyncAge: 0, revision: gitRevisionOf('rev4') });
    expect(await systemPackages(host)).toMatch(/home-manager-rev4/);

    const st = await runCli(['status', '--config', host.configPath, '--json']);
    expect(st.code).toBe(0);
    const doc = JSON.parse(st.stdout);
    const d = doc.desyncs.find((x: { name: string }) => x.name === 'home-manager');
    expect(Object.keys(d)).toEqual(expect.arrayContaining(['name', 'revision', 'path', 'lagRebuilds', 'maxLagRebuilds', 'behindSeconds', 'maxBehindSeconds', 'breached', 'lastAttempt']));
    expect(d).toMatchObject({ revision: gitRevisionOf('rev4'), lagRebuilds: 0, maxLagRebuilds: 2, behindSeconds: 0, maxBehindSeconds: null, breached: false, lastAttempt: { result: 'passed' } });
    expect(doc.system).toMatchObject({ generation: 3 });
    expect(Date.parse(doc.system.generationTimestamp)).toBeGreaterThan(0);
    expect(typeof doc.system.rebootRequired).toBe('boolean');
    expect(doc.lastRun).toMatchObject({ result: 'success' });
    expect(Date.parse(doc.lastRun.at)).toBeGreaterThan(0);
    const table = await runCli(['status', '--config', host.configPath]);
    expect(table.stdout).toMatch(/home-manager\s+\S+\s+0\/2\s+/);
  });

  it('an evaluation error in one desync fails only that desync, in one evaluation for all; nixpkgsConfig is per desync', async () => {
    const host = await newHost('eval-error', {
      'home-manager': { requireBuilds: ['home-manager'] },
      synapse: { requireBuilds: ['matrix-synapse'] },
      unfree: { requireBuilds: ['unfree-tool'], nixpkgsConfig: { allowUnfree: true } },
      missing: { requireBuilds: ['python3Packages.nosuchthing'] },
    });
    await host.writeConfig({ system: { build: ['/bin/true'], activate: null } });
    const r1 = await upgrade(host, 'rev1', '--json');
    // `missing` has no pin: the first run fails for it alone.
    expect(r1.code).toBe(1);
    const res1 = JSON.parse(r1.stdout);
    expect(res1.evaluations).toBe(1);
    expect(res1.error.message).toMatch(/desync missing failed its gate and has no known-good pin yet/);
    expect(r1.stderr).toMatch(/missing: FAILED — python3Packages\.nosuchthing: attribute 'nosuchthing' missing/);
    await host.writeConfig({ desyncs: { 'home-manager': { requireBuilds: ['home-manager'] }, synapse: { requireBuilds: ['matrix-synapse'] }, unfree: { requireBuilds: ['unfree-tool'], nixpkgsConfig: { allowUnfree: true } } } });
    expect((await upgrade(host, 'rev1')).code).toBe(0);
    const r6 = await upgrade(host, 'rev6', '--json');
    expect(r6.code, r6.stderr).toBe(0);
    const res = JSON.parse(r6.stdout);
    expect(res.evaluations).toBe(2); // the gate + the system build
    expect(res.desyncs.map((d: { name: string; result: string }) => [d.name, d.result])).toEqual([
      ['home-manager', 'failed'],
      ['synapse', 'passed'],
      ['unfree', 'passed'],
    ]);
    expect(r6.stderr).toMatch(/home-manager is marked broken on rev6/);
  });

  it('a desync that stays broken breaches at its budget: onBreach "fail" stops before the system build, exit 1', async () => {
    const host = await newHost('breach-fail');
    expect((await upgrade(host, 'rev1')).code).toBe(0);
    expect((await upgrade(host, 'rev2')).code).toBe(0);
    expect((await upgrade(host, 'rev3')).code).toBe(0);
    expect(evalPin(host, 'home-manager').desyncAge).toBe(2);
    const gens = await generations(host);
    const r = await upgrade(host, 'rev6');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/home-manager breached its budget \(lag 2 ≥ maxLagRebuilds 2\)/);
    expect(await generations(host)).toEqual(gens);
    expect(evalPin(host, 'home-manager')).toMatchObject({ desyncAge: 2, revision: gitRevisionOf('rev1') });
    const doc = JSON.parse((await runCli(['status', '--config', host.configPath, '--json'])).stdout);
    expect(doc.desyncs.find((d: { name: string }) => d.name === 'home-manager').breached).toBe(true);
    expect(doc.lastRun.result).toBe('breach');
  });

  it('onBreach "continue": the system is still built and activated with the stale pin, and the run exits 1', async () => {
    const host = await newHost('breach-continue', undefined, { onBreach: 'continue' });
    for (const rev of ['rev1', 'rev2', 'rev3']) expect((await upgrade(host, rev)).code).toBe(0);
    const r = await upgrade(host, 'rev6');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/onBreach is "continue"/);
    expect(await generations(host)).toHaveLength(4);
    expect(evalPin(host, 'home-manager')).toMatchObject({ desyncAge: 3, revision: gitRevisionOf('rev1') });
    expect(await systemPackages(host)).toMatch(/hello-rev6[\s\S]*home-manager-rev1/);
  });

  it('a system build failure restores the pins exactly and creates no generation', async () => {
    const host = await newHost('system-fail');
    expect((await upgrade(host, 'rev1')).code).toBe(0);
    expect((await upgrade(host, 'rev2')).code).toBe(0);
    const pins = join(host.stateDir, 'pins');
    const before = { link: await readlink(pins), files: await Promise.all(['home-manager', 'synapse'].map((n) => readFile(join(pins, `${n}.nix`), 'utf8'))) };
    const gens = await generations(host);
    const r = await upgrade(host, 'rev5');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/system build .* failed: .*; the previous pin set was restored/);
    expect(r.stdout).toMatch(/hello fails to build on rev5/);
    expect(await readlink(pins)).toBe(before.link);
    expect(await Promise.all(['home-manager', 'synapse'].map((n) => readFile(join(pins, `${n}.nix`), 'utf8')))).toEqual(before.files);
    expect(await generations(host)).toEqual(gens);
    expect(await readdir(join(host.stateDir, 'sets'))).toHaveLength(1);
  });

  it('first run with a failing desync and no pin: exit 1 with a clear message', async () => {
    const host = await newHost('no-pin');
    const r = await upgrade(host, 'rev2');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/desync home-manager failed its gate and has no known-good pin yet \(first run\)/);
    expect(await generations(host)).toHaveLength(0);
  });

  it('a concurrent run exits 75; kill -9 during the system build is recovered by the next run', async () => {
    const host = await newHost('concurrent');
    expect((await upgrade(host, 'rev1')).code).toBe(0);
    const committed = await readlink(join(host.stateDir, 'pins'));
    // A system build that hangs (its own child included) until killed.
    const marker = join(host.dir, 'sleeper.pid');
    await host.writeConfig({ system: { build: ['/bin/sh', '-c', 'sleep 300 & echo $! > "$0"; wait', marker], activate: null } });
    await host.useRevision('rev2');
    const a = startCli(['upgrade', '--config', host.configPath]);
    const deadline = Date.now() + 20_000;
    while (!existsSync(marker) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(marker)).toBe(true);
    const b = await runCli(['upgrade', '--config', host.configPath]);
    expect(b.code).toBe(75);
    expect(b.stderr).toMatch(/another nixos-desync run holds .*lock/);
    // During the system build the candidate set is visible.
    expect(await readlink(join(host.stateDir, 'pins'))).not.toBe(committed);
    a.child.kill('SIGKILL');
    await a.done;
    const sleeper = Number((await readFile(marker, 'utf8')).trim());
    await host.writeConfig({ system: { build: ['/bin/false'], activate: null } });
    const c = await upgrade(host, 'rev2');
    expect(c.stdout).toMatch(/recovered from an interrupted run/);
    expect(c.stdout).toMatch(/killed process group/);
    expect(await readlink(join(host.stateDir, 'pins'))).toBe(committed);
    expect(await processGone(sleeper)).toBe(true);
    expect(await readdir(join(host.stateDir, 'sets'))).toEqual([committed.split('/')[1]]);
  });

  it('a real channel: nix-channel --update fetches the candidate; a failing fetch changes nothing', async () => {
    const host = await newHost('channel');
    const name = `desynctest${process.pid}`;
    const chan = join(host.dir, 'chan');
    await mkdir(join(chan, 'src'), { recursive: true });
    await cp(join(host.dir, 'revs', 'rev1'), join(chan, 'src', 'nixpkgs'), { recursive: true });
    execFileSync('tar', ['-C', join(chan, 'src'), '-cJf', join(chan, 'nixexprs.tar.xz'), 'nixpkgs']);
    execFileSync('nix-channel', ['--add', `file://${chan}`, name], { env });
    try {
      const channelPath = `/nix/var/nix/profiles/per-user/${process.env.USER ?? 'root'}/channels/${name}`;
      await host.writeConfig({ nixpkgs: channelPath, channel: { name, update: true } });
      // (The fake system build keeps using the demo channel link, here also rev1.)
      await host.useRevision('rev1');
      const r = await runCli(['upgrade', '--config', host.configPath]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`fetch +nix-channel --update ${name} ok`));
      const pin = evalPin(host, 'synapse');
      expect(pin.revision).toBe(gitRevisionOf('rev1'));
      expect(pin.path).toMatch(new RegExp(`^/nix/store/[0-9a-z]{32}-${name}/${name}$`));
      const link = await readlink(join(host.stateDir, 'pins'));
      // A broken channel URL: exit 1, nothing changes.
      execFileSync('nix-channel', ['--remove', name], { env });
      execFileSync('nix-channel', ['--add', `file://${join(host.dir, 'does-not-exist')}`, name], { env });
      const bad = await runCli(['upgrade', '--config', host.configPath]);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toMatch(/nix-channel --update .* failed/);
      expect(await readlink(join(host.stateDir, 'pins'))).toBe(link);
    } finally {
      spawnSync('nix-channel', ['--remove', name], { env });
    }
  });

  it('nix-collect-garbage -d after runs never deletes a pinned nixpkgs', async () => {
    const host = await newHost('gc');
    for (const rev of ['rev1', 'rev2', 'rev3']) expect((await upgrade(host, rev)).code).toBe(0);
    const pinned = ['home-manager', 'synapse'].map((n) => evalPin(host, n).path);
    expect(pinned[0]).toMatch(/-rev1$/);
    expect(pinned[1]).toMatch(/-rev3$/);
    const roots = gcRoots();
    for (const p of pinned) expect(roots).toContain(p);
    execFileSync('nix-collect-garbage', ['-d'], { env, stdio: 'ignore' });
    for (const p of pinned) {
      expect(existsSync(p)).toBe(true);
      expect(spawnSync('nix-store', ['--check-validity', p], { env }).status).toBe(0);
      // …and it is still a usable nixpkgs.
      const out = execFileSync('nix-instantiate', ['--eval', '-E', '(import (import ' + JSON.stringify(join(host.stateDir, 'pins', 'synapse.nix')) + ').path { }).hello.name'], { env, encoding: 'utf8' });
      expect(out).toMatch(/hello-rev3/);
    }
    // The next run still works.
    expect((await upgrade(host, 'rev4')).code).toBe(0);
  });
});

if (HAVE_NIX) defineActivationSuite(() => root);
if (HAVE_NIX) defineRollbackSuite(() => root);
if (HAVE_NIX) defineHoldbackSuite(() => root);
if (HAVE_NIX) defineFaultSuite(() => root);
if (HAVE_NIX) defineIdentitySuite(() => root);
if (HAVE_NIX) defineRebootSuite(() => root);
defineExporterDemoSuite();
