// Activation, health gate, rollback and provenance with real Nix on the demo host: the fake
// toplevel's bin/switch-to-configuration records activations into the host's run dir
// (current-system, activations, boot-default, failed-units) and the host's stand-in systemctl
// reports the failed units. Imported by real-nix.test.ts (one file for the store, see there).
import { describe, it, expect } from 'vitest';
import { chmod, readFile, readdir, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createDemoHost, FAKE_REBUILD, type DemoHost } from '../../src/demo/host.js';
import { gitRevisionOf, type FakeRevision } from '../../src/demo/fake-nixpkgs.js';
import { loadConfig } from '../../src/config/load.js';
import { NIX_ENV, runCli, startCli, waitUntil, gcRoots } from '../helpers/cli.js';
import { sample, startTestExporter } from '../fixtures/exporter/start.js';
import { NIX_CALLS_ENV, classifyNixCall, readNixCalls, showNixCall, writeNixShims } from '../helpers/nixos-rebuild.js';

const env = { ...process.env, ...NIX_ENV };
const DESYNCS = ['home-manager', 'synapse'];

export const ACTIVATION_REVS: FakeRevision[] = [
  { label: 'rev1' },
  { label: 'rev2' },
  { label: 'crash', crashes: ['matrix-synapse'] }, // builds, but matrix-synapse.service fails once activated
  { label: 'badact', breaksActivation: ['hello'] }, // builds, but switch-to-configuration fails
  { label: 'rev3' },
];

export async function activationHost(root: string, name: string, extra: Record<string, unknown> = {}): Promise<DemoHost> {
  return createDemoHost(join(root, name), {
    revisions: ACTIVATION_REVS,
    desyncs: {
      'home-manager': { requireBuilds: ['home-manager'] },
      synapse: { requireBuilds: ['matrix-synapse'] },
    },
    systemPackages: { 'home-manager': 'home-manager', synapse: 'matrix-synapse' },
    extraConfig: extra,
  });
}

export async function upgrade(host: DemoHost, rev: string | null, ...flags: string[]) {
  if (rev !== null) await host.useRevision(rev);
  return runCli(['upgrade', '--config', host.configPath, ...flags]);
}

export const current = (host: DemoHost): Promise<string> => realpath(join(host.runDir, 'current-system'));
export const activations = async (host: DemoHost): Promise<string[]> =>
  (await readFile(join(host.runDir, 'activations'), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
const generations = async (host: DemoHost): Promise<string[]> => (await readdir(host.profilesDir)).filter((n) => /^system-\d+-link$/.test(n)).sort();

/** Everything a rollback must leave exactly as it was. */
export async function snapshot(host: DemoHost) {
  const pins = join(host.stateDir, 'pins');
  return {
    link: await readlink(pins),
    files: await Promise.all(DESYNCS.map((n) => readFile(join(pins, `${n}.nix`), 'utf8'))),
    generations: await generations(host),
    profile: await readlink(join(host.profilesDir, 'system')),
    bootDefault: await realpath(join(host.runDir, 'boot-default')),
    current: await current(host),
  };
}

export async function statusOf(host: DemoHost) {
  const r = await runCli(['status', '--config', host.configPath, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

async function generationsOf(host: DemoHost) {
  const r = await runCli(['generations', '--config', host.configPath, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

export function defineActivationSuite(root: () => string): void {
  describe('activation, health gate, rollback and provenance (real Nix, default system.activate "switch")', () => {
    it('healthy upgrade: exactly the built toplevel is test-activated, gated, then becomes the profile generation and the boot default', async () => {
      const host = await activationHost(root(), 'healthy');
      const r1 = await upgrade(host, 'rev1');
      expect(r1.code, r1.stdout + r1.stderr).toBe(0);
      const built = /system +.* ok → (\/nix\/store\/\S+)/.exec(r1.stdout)?.[1];
      expect(built).toMatch(/-nixos-system-demo$/);
      expect(await current(host)).toBe(built);
      // test-activation first, then (healthy) boot: the order the contract requires.
      expect(await activations(host)).toEqual([`test ${built}`, `boot ${built}`]);
      expect(await realpath(join(host.profilesDir, 'system'))).toBe(built);
      expect(await realpath(join(host.runDir, 'boot-default'))).toBe(built);
      expect(r1.stdout).toMatch(/health +healthy after 0s settle \(failed units, 0 check\(s\)\)/);
      // The toplevel is rooted with the committed set until the next commit.
      const roots = gcRoots();
      expect(roots).toMatch(new RegExp(`${host.stateDir}/sets/[^/]+/roots/toplevel -> ${built}`));
      // No run-private build directory is left behind.
      expect(existsSync(join(host.stateDir, 'build')) ? await readdir(join(host.stateDir, 'build')) : []).toEqual([]);

      const r2 = await upgrade(host, 'rev2');
      expect(r2.code, r2.stdout + r2.stderr).toBe(0);
      expect(await generations(host)).toHaveLength(2);
      const st = await statusOf(host);
      expect(st.lastRun.result).toBe('success');
      expect(st.system.sources).toMatchObject({
        nixpkgs: { revision: gitRevisionOf('rev2') },
        desyncs: { 'home-manager': { revision: gitRevisionOf('rev2'), desyncAge: 0 }, synapse: { revision: gitRevisionOf('rev2'), desyncAge: 0 } },
      });
    });

    it('unhealthy (a health check fails): rolled back — previous system active, pins byte-identical, profile and boot entry unchanged, run rolled_back, metrics', async () => {
      const host = await activationHost(root(), 'unhealthy');
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      const before = await snapshot(host);
      // A health check that fails for rev2's system (it sees the new and the previous toplevel).
      const check = join(host.dir, 'check.sh');
      await writeFile(check, '#!/bin/sh\necho "checking $NIXOS_DESYNC_TOPLEVEL (previous $NIXOS_DESYNC_PREVIOUS_TOPLEVEL)"\n' +
        'if grep -q rev2 "$NIXOS_DESYNC_TOPLEVEL/packages"; then echo "error: the web frontend answers 502" >&2; exit 3; fi\n');
      await chmod(check, 0o755);
      await host.writeConfig({ health: { settle: '0s', checks: [[check]] } });
      const r = await upgrade(host, 'rev2');
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toMatch(/health +FAILED — check .*check\.sh: .*exited with code 3/);
      expect(r.stdout).toMatch(/error: the web frontend answers 502/); // its output tail
      expect(r.stdout).toMatch(new RegExp(`checking /nix/store/\\S+ \\(previous ${before.current}\\)`));
      expect(r.stdout).toMatch(/rollback +.* activated again; the previous pin set was restored/);
      expect(r.stdout).toMatch(/run rolled_back/);
      expect(await snapshot(host)).toEqual(before);
      const acts = await activations(host);
      expect(acts.at(-1)).toBe(`test ${before.current}`); // the previous system, re-activated
      const st = await statusOf(host);
      expect(st.lastRun.result).toBe('rolled_back');
      expect(st.rollback).toMatchObject({ reason: 'health', previous: before.current });
      expect(st.rejected).toEqual([expect.objectContaining({ revision: gitRevisionOf('rev2'), reason: 'health' })]);
      expect(st.system.sources.nixpkgs.revision).toBe(gitRevisionOf('rev1'));
      // Metrics from the persisted state.
      const exp = await startTestExporter(await loadConfig(host.configPath));
      try {
        const text = await (await fetch(`${exp.url}metrics`)).text();
        expect(sample(text, 'nixos_desync_runs_total{result="rolled_back"}')).toBe(1);
        expect(sample(text, 'nixos_desync_rollbacks_total{reason="health"}')).toBe(1);
        expect(sample(text, 'nixos_desync_rollbacks_total{reason="activation"}')).toBe(0);
        expect(sample(text, 'nixos_desync_last_health_check_success')).toBe(0);
        expect(sample(text, 'nixos_desync_last_rollback_timestamp_seconds')).toBeGreaterThan(sample(text, 'nixos_desync_last_successful_run_timestamp_seconds')!);
        expect(sample(text, `nixos_desync_system_source_info{source="nixpkgs",revision="${gitRevisionOf('rev1')}"}`)).toBe(1);
      } finally {
        await exp.close();
      }
    });

    it('activation failure: rolled back the same way (reason activation)', async () => {
      const host = await activationHost(root(), 'badact');
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      const before = await snapshot(host);
      const r = await upgrade(host, 'badact');
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toMatch(/activation \(\S+\/bin\/switch-to-configuration test\) failed: .* exited with code 1/);
      expect(r.stdout).toMatch(/activation script snippet of hello failed/);
      expect(await snapshot(host)).toEqual(before);
      const st = await statusOf(host);
      expect(st.lastRun.result).toBe('rolled_back');
      expect(st.rollback.reason).toBe('activation');
    });

    it('a rejected candidate is skipped at once, and tried with --retry; the source moves on: the new one is tried, the old one stays rejected', async () => {
      const host = await activationHost(root(), 'rejected');
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      expect((await upgrade(host, 'crash')).code).toBe(1);
      const acts = (await activations(host)).length;
      // Same revision again: exit 1 at once, nothing gated, built or activated.
      const skipped = await upgrade(host, null, '--json');
      expect(skipped.code).toBe(1);
      const res = JSON.parse(skipped.stdout);
      expect(res.error.code).toBe('E_REJECTED');
      expect(res.error.message).toMatch(new RegExp(`candidate ${gitRevisionOf('crash')} \\(\\S+-crash\\) was rejected: run \\S+ rolled it back .* \\(health gate failed\\); it is skipped \\(a later, different candidate is tried.*--retry`));
      expect(res.evaluations).toBe(0);
      expect(res.stages.gate).toBeUndefined();
      expect((await activations(host)).length).toBe(acts);
      // --retry tries it (and it fails again: still rejected).
      const retried = await upgrade(host, null, '--retry');
      expect(retried.stdout).toMatch(/trying it again \(--retry\)/);
      expect(retried.code).toBe(1);
      expect((await statusOf(host)).lastRun.result).toBe('rolled_back');
      // The source moves: the new revision is tried and goes live; the rejected one stays rejected (#18.6).
      const moved = await upgrade(host, 'rev3');
      expect(moved.code, moved.stdout + moved.stderr).toBe(0);
      const st = await statusOf(host);
      expect(st.rejected).toEqual([expect.objectContaining({ revision: gitRevisionOf('crash') })]);
      expect(st.system.sources.nixpkgs.revision).toBe(gitRevisionOf('rev3'));
    });

    it('--retry after a fix: the rejected revision goes live when it is healthy now', async () => {
      const host = await activationHost(root(), 'retry-fixed');
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      await host.writeConfig({ health: { settle: '0s', checks: [['/bin/sh', '-c', 'test ! -e "$0"', join(host.dir, 'broken')]] } });
      await writeFile(join(host.dir, 'broken'), '');
      expect((await upgrade(host, 'rev2')).code).toBe(1);
      expect((await upgrade(host, null)).code).toBe(1); // skipped
      await rm(join(host.dir, 'broken'));
      const r = await upgrade(host, null, '--retry');
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect((await statusOf(host)).system.sources.nixpkgs.revision).toBe(gitRevisionOf('rev2'));
    });

    it('failed units: one failed before the activation is ignored, a new one fails the gate (named with its status tail), ignoreUnits is honoured', async () => {
      const host = await activationHost(root(), 'units');
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      await writeFile(join(host.runDir, 'failed-units.static'), 'legacy-backup.service\n');
      const r2 = await upgrade(host, 'rev2');
      expect(r2.code, r2.stdout + r2.stderr).toBe(0); // legacy-backup.service was failed before
      const before = await snapshot(host);
      const bad = await upgrade(host, 'crash');
      expect(bad.code).toBe(1);
      expect(bad.stdout).toMatch(/some units failed to start \(exit 4\): the health gate decides/);
      expect(bad.stdout).toMatch(/health +FAILED — unit matrix-synapse\.service: failed after the activation/);
      expect(bad.stdout).toMatch(/Active: failed \(Result: exit-code\)/); // systemctl status tail
      expect(bad.stdout).not.toMatch(/FAILED — unit legacy-backup/);
      expect(await snapshot(host)).toEqual(before);
      // After the rollback the previous system's units are fine again.
      expect((await readFile(join(host.runDir, 'failed-units'), 'utf8')).trim()).toBe('');
      await host.writeConfig({ health: { settle: '0s', ignoreUnits: ['matrix-*.service'] } });
      const ok = await upgrade(host, null, '--retry');
      expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    });

    for (const where of ['activation', 'health gate'] as const) {
      it(`kill -9 during the ${where}: the next run rolls back first (exactly once), does not reject the candidate, then proceeds`, async () => {
        const host = await activationHost(root(), `kill-${where.replace(' ', '-')}`);
        expect((await upgrade(host, 'rev1')).code).toBe(0);
        const before = await snapshot(host);
        await host.useRevision('rev2');
        const marker = join(host.dir, 'slow.started');
        if (where === 'health gate') {
          // A slow health check: the run is killed while the new system is live but unconfirmed.
          await host.writeConfig({ health: { settle: '0s', checks: [['/bin/sh', '-c', 'touch "$0"; sleep 60', marker]] } });
        }
        const run = where === 'activation'
          ? startCli(['upgrade', '--config', host.configPath], { NIXOS_DESYNC_FAILPOINT: 'after-activate' })
          : startCli(['upgrade', '--config', host.configPath]);
        if (where === 'health gate') {
          expect(await waitUntil(async () => existsSync(marker), 30_000)).toBe(true);
          run.child.kill('SIGKILL');
        }
        const dead = await run.done;
        expect(dead.signal).toBe('SIGKILL');
        const live = await current(host);
        expect(live).not.toBe(before.current); // the candidate system was active when the run died
        expect(await realpath(join(host.runDir, 'boot-default'))).toBe(before.bootDefault); // a reboot would boot the previous one
        const actsBefore = (await activations(host)).length;
        await host.writeConfig({ health: { settle: '0s' } });
        const next = await upgrade(host, null);
        expect(next.code, next.stdout + next.stderr).toBe(0);
        expect(next.stdout).toMatch(new RegExp(`the unconfirmed system ${live} was rolled back: ${before.current} activated again`));
        // Exactly one rollback activation, then the retried candidate (not rejected: a crash is no verdict).
        const acts = (await activations(host)).slice(actsBefore);
        expect(acts[0]).toBe(`test ${before.current}`);
        expect(acts.filter((a) => a === `test ${before.current}`)).toHaveLength(1);
        expect(acts.slice(1)).toEqual([`test ${live}`, `boot ${live}`]);
        const st = await statusOf(host);
        expect(st.rejected).toEqual([]);
        expect(st.system.sources.nixpkgs.revision).toBe(gitRevisionOf('rev2'));
        const hist = JSON.parse(await readFile(join(host.stateDir, 'history.json'), 'utf8')).runs as Array<{ error: string | null; result: string }>;
        expect(hist.filter((h) => h.error?.startsWith('interrupted'))).toHaveLength(1);
        expect(st.runsTotal).toMatchObject({ rolled_back: 0, failure: 1, success: 2 });
      });
    }

    it('nixos-desync recover (the boot-time unit) rolls back an unconfirmed activation once; a second recover has nothing to do', async () => {
      const host = await activationHost(root(), 'recover');
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      const before = await snapshot(host);
      await host.useRevision('rev2');
      const dead = await runCli(['upgrade', '--config', host.configPath], { NIXOS_DESYNC_FAILPOINT: 'after-activate' });
      expect(dead.signal).toBe('SIGKILL');
      const r1 = await runCli(['recover', '--config', host.configPath]);
      expect(r1.code, r1.stdout + r1.stderr).toBe(0);
      expect(r1.stdout).toMatch(/recovered interrupted run/);
      expect(await snapshot(host)).toEqual(before);
      const r2 = await runCli(['recover', '--config', host.configPath]);
      expect(r2.stdout).toMatch(/nothing to recover/);
      expect(await snapshot(host)).toEqual(before);
    });

    it('generations --json: loop-built generations with their sources (desync lag included), a foreign one with null', async () => {
      const host = await activationHost(root(), 'generations', { desyncs: { 'home-manager': { requireBuilds: ['home-manager'] }, synapse: { requireBuilds: ['matrix-synapse'] } } });
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      // A generation made by hand (nixos-rebuild switch outside the loop, from another revision).
      await host.useRevision('rev3');
      execFileSync(process.execPath, [FAKE_REBUILD, 'switch', '--host', host.dir], { env, cwd: host.dir, stdio: 'ignore' });
      await host.writeConfig({ desyncs: { 'home-manager': { requireBuilds: ['home-manager', 'nosuch'] }, synapse: { requireBuilds: ['matrix-synapse'] } } });
      const r = await upgrade(host, 'rev2');
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const gens = await generationsOf(host);
      expect(gens.map((g: { generation: number }) => g.generation)).toEqual([3, 2, 1]);
      for (const g of gens) expect(Object.keys(g).sort()).toEqual(['booted', 'current', 'generation', 'sources', 'timestamp', 'toplevel']);
      expect(gens[0]).toMatchObject({
        current: true,
        toplevel: await current(host),
        sources: {
          nixpkgs: { revision: gitRevisionOf('rev2') },
          desyncs: { 'home-manager': { revision: gitRevisionOf('rev1'), desyncAge: 1 }, synapse: { revision: gitRevisionOf('rev2'), desyncAge: 0 } },
        },
      });
      expect(gens[1]).toMatchObject({ current: false, sources: null });
      expect(gens[2]).toMatchObject({ current: false, booted: true, sources: { nixpkgs: { revision: gitRevisionOf('rev1') } } });
      expect(Date.parse(gens[0].timestamp)).toBeGreaterThan(0);
      const table = await runCli(['generations', '--config', host.configPath]);
      expect(table.stdout).toMatch(/ 3 .*current .*nixpkgs [0-9a-f]{12}, home-manager [0-9a-f]{12} \(lag 1\), synapse/);
      expect(table.stdout).toMatch(/ 2 .*not built by nixos-desync/);
    });

    it('exactly 2 evaluating Nix calls per run at the defaults (gate + system build), counted with PATH shims', async () => {
      const host = await activationHost(root(), 'evals');
      // The test-only Nix shims (test/helpers/nixos-rebuild.ts) log every Nix call.
      const shims = await writeNixShims(join(host.dir, 'nix'));
      const calls = join(host.dir, 'nix-calls.log');
      const withShims = { PATH: `${host.binDir}:${shims}/bin:${process.env.PATH}`, [NIX_CALLS_ENV]: calls };
      expect((await runCli(['upgrade', '--config', host.configPath], withShims)).code).toBe(0);
      for (const rev of ['rev2', 'rev3']) {
        await writeFile(calls, '');
        await host.useRevision(rev);
        const r = await runCli(['upgrade', '--config', host.configPath, '--json'], withShims);
        expect(r.code, r.stderr).toBe(0);
        const all = await readNixCalls(calls);
        // Not evaluating: nix-store, nix-env --set / --list-generations (classifyNixCall).
        const evaluating = all.filter((c) => classifyNixCall(c) === 'eval').map(showNixCall);
        expect(evaluating, all.map(showNixCall).join('\n')).toHaveLength(2);
        expect(evaluating[0]).toMatch(/^nix-instantiate --eval --strict --json --read-write-mode -E /); // the gate
        expect(evaluating[1]).toMatch(/^nix-build .*system\.nix/); // the system build
        expect(all.map(showNixCall).some((l) => l.startsWith(`nix-env -p ${host.profilesDir}/system --set /nix/store/`))).toBe(true);
        expect(JSON.parse(r.stdout).evaluations).toBe(2); // the gate + the system build, as the shims counted
      }
    });
  });
}
