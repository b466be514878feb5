// Reboots with real Nix on the demo host (steps 9b–9c): a new kernel makes the run reboot after
// the commit; switch inhibitors send the candidate the boot path (no live activation); verify-boot
// at the next boot verifies it, or rejects it and returns to the last verified generation. The
// reboot command and the boot loader are logged stand-ins: `reboot.command` appends to
// <runDir>/reboots, a "boot" points booted-system/current-system at a toplevel and sets the
// failed units its services would have. Imported by real-nix.test.ts (one file for the store).
import { describe, it, expect } from 'vitest';
import { appendFile, chmod, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDemoHost, type DemoHost } from '../../src/demo/host.js';
import { gitRevisionOf, type FakeRevision } from '../../src/demo/fake-nixpkgs.js';
import { loadConfig } from '../../src/config/load.js';
import { runCli } from '../helpers/cli.js';
import { sample, startTestExporter } from '../fixtures/exporter/start.js';
import { activations, current, statusOf, upgrade } from './activation.suite.js';

export const REBOOT_REVS: FakeRevision[] = [
  { label: 'rev1' },
  { label: 'rev2' },
  { label: 'inh1', switchInhibitors: { systemd: 'systemd-257' } },
  { label: 'inh2', switchInhibitors: { systemd: 'systemd-258' } },
  // The boot path's candidate whose synapse service fails once it runs (seen only at boot).
  { label: 'inhcrash', switchInhibitors: { systemd: 'systemd-258' }, crashes: ['matrix-synapse'] },
];

async function rebootHost(root: string, name: string, reboot: Record<string, unknown> = {}): Promise<DemoHost> {
  const host = await createDemoHost(join(root, name), {
    revisions: REBOOT_REVS,
    desyncs: { synapse: { requireBuilds: ['matrix-synapse'] } },
    systemPackages: { synapse: 'matrix-synapse' },
  });
  const standIn = join(host.binDir, 'stand-in-reboot');
  await writeFile(standIn, `#!/bin/sh\necho "reboot $*" >> ${JSON.stringify(join(host.runDir, 'reboots'))}\n`);
  await chmod(standIn, 0o755);
  // Never the machine's /run/reboot-required.
  await host.writeConfig({ reboot: { enable: true, command: [standIn, '--now'], sentinel: join(host.runDir, 'reboot-required'), ...reboot } });
  return host;
}

const reboots = async (host: DemoHost): Promise<number> => (await readFile(join(host.runDir, 'reboots'), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '').length;
/** What the stand-in boot loader boots: the last `switch-to-configuration boot`. */
const bootDefault = (host: DemoHost): Promise<string> => realpath(join(host.runDir, 'boot-default'));

/** A boot into `top`: booted-system and current-system name it, its crashing services are the failed units. */
async function bootInto(host: DemoHost, top: string): Promise<void> {
  for (const l of ['booted-system', 'current-system']) {
    await rm(join(host.runDir, l), { force: true });
    await symlink(top, join(host.runDir, l));
  }
  const failed: string[] = [];
  for (const p of (await readFile(join(top, 'packages'), 'utf8')).split('\n').filter((x) => x !== '')) {
    const text = await readFile(p, 'utf8');
    if (text.includes('crashes-at-runtime')) failed.push(`${text.split(' ')[0]}.service`);
  }
  await writeFile(join(host.runDir, 'failed-units'), failed.map((u) => `${u}\n`).join(''));
  await appendFile(join(host.runDir, 'boots'), `${top}\n`);
}

async function upgradeOk(host: DemoHost, rev: string): Promise<void> {
  const r = await upgrade(host, rev);
  expect(r.code, r.stdout + r.stderr).toBe(0);
}

const verifyBoot = (host: DemoHost) => runCli(['verify-boot', '--config', host.configPath]);

async function metric(host: DemoHost, name: string): Promise<number | undefined> {
  const exp = await startTestExporter(await loadConfig(host.configPath));
  try {
    return sample(await (await fetch(`${exp.url}metrics`)).text(), name);
  } finally {
    await exp.close();
  }
}

export function defineRebootSuite(root: () => string): void {
  describe('reboots (real Nix; reboot command and boot loader as logged stand-ins)', () => {
    it('a new kernel: the run reboots once it is recorded; verify-boot at the next boot verifies the booted system', async () => {
      const host = await rebootHost(root(), 'kernel');
      await upgradeOk(host, 'rev1');
      expect(await reboots(host)).toBe(0); // booted = new: nothing to apply
      const r = await upgrade(host, 'rev2');
      expect(r.code, r.stdout + r.stderr).toBe(0);
      const top = await current(host);
      expect(r.stdout).toMatch(/reboot +reboot required \(kernel: \S+-linux-rev1 → \S+-linux-rev2.*\); rebooting now once the run is recorded/);
      expect(r.stdout.indexOf('rebooting now (')).toBeGreaterThan(r.stdout.indexOf('commit '));
      expect(await reboots(host)).toBe(1);
      expect(await readFile(join(host.runDir, 'reboot-required'), 'utf8')).toMatch(/^kernel: /m);
      let st = await statusOf(host);
      expect(st.lastRun.result).toBe('success');
      expect(st.reboot.pending).toMatchObject({ toplevel: top, why: expect.stringMatching(/verified live; a reboot applies kernel/) });
      // The boot loader boots the boot default; verify-boot runs the health gate on it.
      expect(await bootDefault(host)).toBe(top);
      await bootInto(host, top);
      const v = await verifyBoot(host);
      expect(v.code, v.stdout + v.stderr).toBe(0);
      expect(v.stdout).toMatch(/verify-boot the booted system \S+ is healthy: verified/);
      st = await statusOf(host);
      expect(st.reboot).toMatchObject({ pending: null, lastBoot: { success: true, booted: top } });
      expect(await metric(host, 'nixos_desync_last_boot_health_success')).toBe(1);
      expect(await reboots(host)).toBe(1);
    });

    it('outside the window the run does not reboot; `nixos-desync reboot` does once the window allows it', async () => {
      // A window that opens in two hours (UTC): now is outside it.
      const hhmm = (h: number): string => `${String((new Date().getUTCHours() + h) % 24).padStart(2, '0')}:00`;
      const host = await rebootHost(root(), 'window', { window: { start: hhmm(2), end: hhmm(3), timezone: 'UTC' } });
      await upgradeOk(host, 'rev1');
      const r = await upgrade(host, 'rev2');
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/outside the reboot window \(daily \d\d:00–\d\d:00 UTC\): the next one opens /);
      expect(await reboots(host)).toBe(0);
      const dry = await runCli(['reboot', '--config', host.configPath, '--dry-run']);
      expect(dry.code).toBe(0);
      expect(dry.stdout).toMatch(/outside the reboot window/);
      await host.writeConfig({ reboot: { ...(host.config.reboot as object), window: null } });
      const now = await runCli(['reboot', '--config', host.configPath]);
      expect(now.code, now.stdout + now.stderr).toBe(0);
      expect(now.stdout).toMatch(/reboot required \(kernel: .*\); rebooting now/);
      expect(await reboots(host)).toBe(1);
    });

    it('switch inhibitors differ: no live activation; the candidate is the boot default and verified at boot', async () => {
      const host = await rebootHost(root(), 'inhibitors');
      await upgradeOk(host, 'inh1');
      const running = await current(host);
      const before = (await activations(host)).length;
      const r = await upgrade(host, 'inh2');
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/activate +not activated live: its switch inhibitors differ from the running system's \(systemd: systemd-257 → systemd-258\)/);
      const cand = await realpath(join(host.profilesDir, 'system'));
      expect(cand).not.toBe(running);
      // Only the boot entry was made: never `switch-to-configuration test` of the candidate.
      expect((await activations(host)).slice(before)).toEqual([`boot ${cand}`]);
      expect(await current(host)).toBe(running);
      expect(await bootDefault(host)).toBe(cand);
      const st = await statusOf(host);
      expect(st.reboot.pending).toMatchObject({ toplevel: cand, previous: running, why: expect.stringMatching(/switch inhibitors differ/) });
      expect(await reboots(host)).toBe(1); // its kernel differs too: the run reboots into it
      await bootInto(host, cand);
      const v = await verifyBoot(host);
      expect(v.code, v.stdout + v.stderr).toBe(0);
      expect((await statusOf(host)).system.verified).toBe(true);
    });

    it('unhealthy at boot: rejected, the last verified generation is the boot default again, one reboot — never a second for the same candidate', async () => {
      const host = await rebootHost(root(), 'unhealthy-boot');
      await upgradeOk(host, 'inh1');
      const good = await current(host);
      const r = await upgrade(host, 'inhcrash');
      expect(r.code, r.stdout + r.stderr).toBe(0); // its health gate runs at boot
      const cand = await bootDefault(host);
      expect(await reboots(host)).toBe(1);
      await bootInto(host, cand);
      const v = await verifyBoot(host);
      expect(v.code).toBe(1);
      expect(v.stdout).toMatch(/verify-boot FAILED — unit matrix-synapse.service/);
      expect(v.stdout).toMatch(/is unhealthy: .*candidate \S+ is rejected and \S+ is the boot default again; rebooting into it \(once for this candidate\)/);
      expect(await bootDefault(host)).toBe(good);
      expect(await realpath(join(host.profilesDir, 'system'))).toBe(good);
      expect(await reboots(host)).toBe(2);
      let st = await statusOf(host);
      expect(st.rejected).toEqual([expect.objectContaining({ revision: gitRevisionOf('inhcrash'), reason: 'health' })]);
      expect(await metric(host, 'nixos_desync_last_boot_health_success')).toBe(0);
      // The loader comes back to the candidate anyway: verify-boot says so and does not reboot again.
      await bootInto(host, cand);
      const again = await verifyBoot(host);
      expect(again.code).toBe(1);
      expect(again.stdout).toMatch(/NOT rebooting: verify-boot already rebooted away from \S+ once \(the loop guard\)/);
      expect(await reboots(host)).toBe(2);
      // Booted into the good generation: verified; the rejected candidate is not tried again.
      await bootInto(host, good);
      expect((await verifyBoot(host)).code).toBe(0);
      st = await statusOf(host);
      expect(st.reboot.lastBoot).toMatchObject({ success: true, booted: good });
      const retry = await upgrade(host, null);
      expect(retry.code).toBe(1);
      expect(retry.stdout + retry.stderr).toMatch(/rejected/);
    });

    it('the boot loader fell back to the previous generation: the candidate is rejected, the running system stays the boot default, no reboot', async () => {
      const host = await rebootHost(root(), 'fell-back');
      await upgradeOk(host, 'inh1');
      const good = await current(host);
      await upgradeOk(host, 'inh2');
      const cand = await bootDefault(host);
      await bootInto(host, good);
      const v = await verifyBoot(host);
      expect(v.code).toBe(1);
      expect(v.stdout).toMatch(new RegExp(`the boot loader booted ${good}, not the boot default ${cand} \\(it fell back\\).*it runs already: no reboot`));
      expect(await bootDefault(host)).toBe(good);
      expect(await reboots(host)).toBe(1); // the run's own reboot only
      expect((await statusOf(host)).rejected).toEqual([expect.objectContaining({ revision: gitRevisionOf('inh2'), reason: 'activation' })]);
    });
  });
}
