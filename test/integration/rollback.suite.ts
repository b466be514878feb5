// Issue 18 items 1 and 2 with real Nix and the real CLI on the demo host: a SIGTERM during the
// health gate does not cancel the rollback; a rollback whose previous system fails to activate
// is `rollback_failed` (and `recover` finishes it once fixed); the rollback target is rooted
// during the run (Nix refuses to delete it). Imported by real-nix.test.ts (one file for the store).
import { describe, it, expect } from 'vitest';
import { existsSync } from 'node:fs';
import { readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { gitRevisionOf } from '../../src/demo/fake-nixpkgs.js';
import { loadConfig } from '../../src/config/load.js';
import { NIX_ENV, runCli, startCli, waitUntil } from '../helpers/cli.js';
import { sample, startTestExporter } from '../fixtures/exporter/start.js';
import { activationHost, current, snapshot, statusOf, upgrade } from './activation.suite.js';

const env = { ...process.env, ...NIX_ENV };

/**
 * A health check that signals it started (`<dir>/started`) and waits for `<dir>/release`, then
 * fails. It drops the toplevels from its environment: Nix counts store paths in a live
 * process's environment as roots, which would hide whether the loop rooted them.
 */
function heldCheck(dir: string): string[] {
  return ['/usr/bin/env', '-u', 'NIXOS_DESYNC_TOPLEVEL', '-u', 'NIXOS_DESYNC_PREVIOUS_TOPLEVEL', '/bin/sh', '-c', 'touch "$0/started"; while [ ! -e "$0/release" ]; do sleep 0.05; done; echo "error: unhealthy" >&2; exit 1', dir];
}

export function defineRollbackSuite(root: () => string): void {
  describe('rollback under signals and failures (real Nix, real CLI)', () => {
    it('SIGTERM during the health gate: the rollback still runs and is confirmed; the candidate is not rejected; nothing is left for recover', async () => {
      const host = await activationHost(root(), 'sigterm-health');
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      const before = await snapshot(host);
      await host.writeConfig({ health: { settle: '0s', checks: [heldCheck(host.dir)] } });
      await host.useRevision('rev2');
      const run = startCli(['upgrade', '--config', host.configPath]);
      expect(await waitUntil(async () => existsSync(join(host.dir, 'started')), 60_000)).toBe(true);
      run.child.kill('SIGTERM');
      const r = await run.done;
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toMatch(/rollback +\S+ activated again; the previous pin set was restored/);
      expect(r.stdout).toMatch(/interrupted: the candidate is not rejected/);
      expect(await snapshot(host)).toEqual(before);
      const st = await statusOf(host);
      expect(st.rejected).toEqual([]);
      expect(st.lastRun.result).toBe('failure');
      expect(existsSync(join(host.stateDir, 'journal.json'))).toBe(false);
      const rec = await runCli(['recover', '--config', host.configPath]);
      expect(rec.stdout).toMatch(/nothing to recover/);
    });

    it('the previous system fails to activate again: rollback_failed (not rolled_back), exported; later runs only retry the rollback; recover finishes it once fixed', async () => {
      const host = await activationHost(root(), 'rollback-fails');
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      const before = await snapshot(host);
      await writeFile(join(host.runDir, 'refuse-activation'), `${before.current}\n`);
      const r = await upgrade(host, 'crash'); // matrix-synapse.service fails once activated
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toMatch(/health +FAILED — unit matrix-synapse\.service/);
      expect(r.stdout).toMatch(/ROLLBACK FAILED: re-activating the previous system .* failed: .*refuse-activation/s);
      expect(r.stdout).toMatch(/run rollback_failed/);
      const bad = await current(host);
      expect(bad).not.toBe(before.current);
      let st = await statusOf(host);
      expect(st.lastRun.result).toBe('rollback_failed');
      expect(st.runsTotal).toMatchObject({ rolled_back: 0, rollback_failed: 1 });
      expect(st.rollback).toBeNull();
      expect(st.rejected).toEqual([expect.objectContaining({ revision: gitRevisionOf('crash') })]);
      const exp = await startTestExporter(await loadConfig(host.configPath));
      try {
        const text = await (await fetch(`${exp.url}metrics`)).text();
        expect(sample(text, 'nixos_desync_runs_total{result="rollback_failed"}')).toBe(1);
        expect(sample(text, 'nixos_desync_runs_total{result="rolled_back"}')).toBe(0);
        expect(sample(text, 'nixos_desync_rollbacks_total{reason="health"}')).toBe(0);
        expect(sample(text, 'nixos_desync_last_rollback_timestamp_seconds')).toBe(0);
      } finally {
        await exp.close();
      }
      // The next run (a new revision, even) only tries to return to the verified system: nothing is built.
      const next = await upgrade(host, 'rev3', '--json');
      expect(next.code).toBe(1);
      expect(JSON.parse(next.stdout)).toMatchObject({ result: 'rollback_failed', error: { code: 'E_ROLLBACK' }, evaluations: 0 });
      expect(await current(host)).toBe(bad);
      // Fixed: recover rolls back (confirmed), and the host is where it was before the candidate.
      await rm(join(host.runDir, 'refuse-activation'));
      const rec = await runCli(['recover', '--config', host.configPath]);
      expect(rec.code, rec.stdout + rec.stderr).toBe(0);
      expect(await snapshot(host)).toEqual(before);
      st = await statusOf(host);
      expect(st.runsTotal).toMatchObject({ rolled_back: 0, rollback_failed: 2 });
      expect(existsSync(join(host.stateDir, 'journal.json'))).toBe(false);
    });

    it('the rollback target is GC-rooted during the run: nix-store --delete refuses it, and the rollback finds it', async () => {
      const host = await activationHost(root(), 'rooted-target');
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      // The running system: built outside the loop from rev3 and rooted by nothing else.
      await host.useRevision('rev3');
      const build = spawnSync('nix-build', [join(host.dir, 'system.nix'), '--argstr', 'nixpkgs', join(host.dir, 'channels', 'nixos'),
        '--argstr', 'pinsDir', join(host.stateDir, 'pins'), '--argstr', 'runDir', host.runDir, '--no-out-link'], { env, encoding: 'utf8' });
      expect(build.status, build.stderr).toBe(0);
      const foreign = build.stdout.trim();
      await rm(join(host.runDir, 'current-system'));
      await symlink(foreign, join(host.runDir, 'current-system'));
      await host.writeConfig({ health: { settle: '0s', checks: [heldCheck(host.dir)] } });
      await host.useRevision('rev2');
      const run = startCli(['upgrade', '--config', host.configPath]);
      expect(await waitUntil(async () => existsSync(join(host.dir, 'started')), 60_000)).toBe(true);
      const del = spawnSync('nix-store', ['--delete', foreign], { env, encoding: 'utf8' });
      expect(del.status, del.stderr).not.toBe(0);
      expect(del.stderr).toMatch(/still alive|cannot delete/);
      await writeFile(join(host.dir, 'release'), '');
      const r = await run.done;
      expect(r.stdout).toMatch(/run rolled_back/);
      expect(await current(host)).toBe(foreign);
    });

    it('kill -9 during the health gate\'s settle: a scrape shows system_unverified 1 and last_health_check_success 0; recover returns to the verified system (system_unverified 0)', async () => {
      const host = await activationHost(root(), 'kill-settle');
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      const before = await snapshot(host);
      await host.writeConfig({ health: { settle: '2m' }, timeouts: { health: '5m' } });
      await host.useRevision('rev2');
      const run = startCli(['upgrade', '--config', host.configPath]);
      // The candidate is activated; the run waits out its settle.
      let exited = '';
      void run.done.then((r) => { exited = r.stdout + r.stderr; });
      expect(await waitUntil(async () => exited !== '' || /"activation":\{/.test(await readFile(join(host.stateDir, 'journal.json'), 'utf8').catch(() => '')), 120_000)).toBe(true);
      expect(exited).toBe('');
      await new Promise((res) => setTimeout(res, 1000)); // inside the settle
      run.child.kill('SIGKILL');
      await run.done;
      const exp = await startTestExporter(await loadConfig(host.configPath));
      try {
        let text = await (await fetch(`${exp.url}metrics`)).text();
        expect(sample(text, 'nixos_desync_system_unverified'), text).toBe(1);
        expect(sample(text, 'nixos_desync_last_health_check_success')).toBe(0);
        expect(sample(text, 'nixos_desync_run_in_progress')).toBe(0);
        expect((await statusOf(host)).system.verified).toBe(false);
        const rec = await runCli(['recover', '--config', host.configPath]);
        expect(rec.code, rec.stdout + rec.stderr).toBe(0);
        expect(await snapshot(host)).toEqual(before);
        expect((await statusOf(host)).system.verified).toBe(true);
        expect(await waitUntil(async () => {
          text = await (await fetch(`${exp.url}metrics`)).text();
          return sample(text, 'nixos_desync_system_unverified') === 0;
        }, 10_000)).toBe(true);
        // A crash is no verdict: nothing rejected, the run counted once.
        expect(sample(text, 'nixos_desync_runs_total{result="failure"}')).toBe(1);
        expect((await statusOf(host)).rejected).toEqual([]);
      } finally {
        await exp.close();
      }
    }, 180_000);
  });
}
