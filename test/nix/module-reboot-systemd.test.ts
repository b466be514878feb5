// The module's reboot units (nix/module/reboot.nix, rendered by test/nix/eval.nix) in a real
// systemd (test/helpers/systemd.ts), with the real CLI: nixos-desync-verify-boot.service runs the
// health gate of the booted system before boot-complete.target (RequiredBy=, boot counting on),
// across "reboots" — the container stopped and booted again with the profile's default
// generation as the booted system. The loop goes the boot path; a unit of the new system fails
// at boot → verify-boot fails, boot-complete.target is not reached, the candidate is rejected,
// the last verified generation is the boot default again and the reboot command runs once; the
// next boot is healthy. The reboot timer is loaded with the window's next start, and a required
// reboot (a new kernel) is done for real by nixos-desync-reboot.service from the loop's sandbox.
//
// What stands in for NixOS (besides host-systemd.nix's package, systemd and nix stand-ins):
// NixOS's stage 2 links /run/booted-system and /run/current-system to the system it boots — here
// a unit before sysinit.target links both to the profile's default; the new system's failing
// unit is a unit that starts only when the booted system has a `crash` file; the
// systemd-bless-boot.service that systemd-boot's generator pulls in (it requires
// boot-complete.target) is a stand-in that records each blessing; the reboot command only
// records that it ran, and runs the module's default `systemctl reboot` when the test asks.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTools } from '../helpers/tools.js';
import { evaluateUnits, moduleStandins, storePath } from '../helpers/module-units.js';
import { bootSystemd, requireSystemd, type SystemdContainer } from '../helpers/systemd.js';
import { nextWindowStart } from '../../src/reboot/schedule.js';
import { systemdEscapePath } from '../../src/system/nixos.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const HERE = fileURLToPath(new URL('./', import.meta.url));
const SHARED = '/srv/nixos-desync-test';
const PROFILE = '/nix/var/nix/profiles/system';
const STATE = '/var/lib/nixos-desync';

const ok = requireTools('nix-instantiate', 'nix-store') && requireSystemd();

describe.skipIf(!ok)('reboots with the module\'s units in a real systemd: verify-boot before boot-complete.target', () => {
  let tmp: string;
  let shared: string;
  let c: SystemdContainer;
  const top: Record<string, string> = {};

  const journal = async (unit: string): Promise<string> => (await c.exec(['journalctl', '--no-pager', '-o', 'cat', '-u', unit])).stdout;
  const resolve = async (path: string): Promise<string> => (await c.exec(['readlink', '-f', path])).stdout.trim();
  const state = (): Record<string, any> => JSON.parse(readFileSync(join(c.root, 'var/lib/nixos-desync/state.json'), 'utf8')) as Record<string, any>;
  const show = async (unit: string, prop: string): Promise<string> => (await c.systemctl('show', '-p', prop, '--value', unit)).stdout.trim();
  const blessed = (): string[] => readFileSync(join(c.root, 'var/lib/blessed.log'), 'utf8').trim().split('\n');
  const activations = (): string[] => readFileSync(join(shared, 'activations.log'), 'utf8').trim().split('\n').filter((l) => l !== '');

  /** A NixOS system stand-in; `crash`: a unit of it fails right after the boot. */
  function toplevel(name: string, crash: boolean, kernel?: string): string {
    return storePath(tmp, `nixos-system-${name}`, {
      'nixos-version': '25.11.20251201.0000000\n',
      ...(crash ? { crash: '' } : {}),
      ...(kernel ? { kernel: { link: kernel } } : {}),
      'bin/switch-to-configuration': {
        exec: `#!/bin/sh\nset -eu\ntop=\${0%/bin/switch-to-configuration}\necho "$1 $(/usr/bin/basename "$top")" >> ${SHARED}/activations.log\n` +
          'case "$1" in test) /bin/ln -sfn "$top" /run/current-system ;; boot) ;; *) exit 1 ;; esac\n',
      },
    });
  }

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'nixos-desync-modreboot-sd-'));
    shared = mkdtempSync(join(tmpdir(), 'nixos-desync-modreboot-sd-shared-'));
    writeFileSync(join(shared, 'activations.log'), '');
    const { pkg, systemd, nix } = moduleStandins(tmp);
    for (const rev of ['a', 'b']) top[`nixpkgs-${rev}`] = storePath(tmp, `nixpkgs-${rev}`, { '.git-revision': rev.repeat(40) + '\n', 'default.nix': '{ ... }: { }\n' });
    symlinkSync(top['nixpkgs-a']!, join(shared, 'channel'));
    const build = storePath(tmp, 'system-build', { 'bin/build': { exec: `#!/bin/sh\n# nixos-rebuild build stand-in: ./result = the toplevel the test chose\nexec /bin/ln -s "$(/bin/cat ${SHARED}/next-toplevel)" result\n` } });
    // Records (in the state dir: the loop's sandbox may write it, and it survives a reboot) which
    // boot asked for a reboot; with the test's flag, then runs the module's default, `systemctl reboot`.
    const reboot = storePath(tmp, 'reboot-standin', {
      'bin/reboot': { exec: `#!/bin/sh\necho "reboot requested while $(/usr/bin/readlink /run/booted-system) runs" >> ${STATE}/reboots.log\n[ -e ${SHARED}/real-reboot ] && exec systemctl reboot\nexit 0\n` },
    });
    top.good = toplevel('good', false);
    top.bad = toplevel('bad', true);
    // A new kernel: a reboot trigger (the booted systems have none).
    top.kernel = toplevel('kernel', false, `${storePath(tmp, 'linux-standin', { bzImage: 'a kernel\n' })}/bzImage`);
    const ev = evaluateUnits(join(HERE, 'host-reboot-systemd.nix'), pkg, `${SHARED}/channel`, {
      systemdPackage: systemd, nixPackage: nix, nixpkgs: `${SHARED}/channel`, build: [`${build}/bin/build`], rebootCommand: [`${reboot}/bin/reboot`],
    });
    expect(Object.keys(ev.units)).toEqual(expect.arrayContaining(['nixos-desync-verify-boot.service', 'nixos-desync-reboot.service', 'nixos-desync-reboot.timer']));
    c = await bootSystemd({
      units: {
        ...ev.units,
        'nixos-stage2.service': '[Unit]\nDescription=NixOS stage 2 stand-in: the profile\'s default is the booted system\nDefaultDependencies=no\nAfter=local-fs.target\nBefore=sysinit.target\n' +
          `[Service]\nType=oneshot\nExecStart=/bin/sh -c 'top=$$(readlink -f ${PROFILE}) && ln -sfn "$$top" /run/booted-system && ln -sfn "$$top" /run/current-system'\n[Install]\nWantedBy=sysinit.target\n`,
        // systemd-boot's bless-boot generator links systemd-bless-boot.service into basic.target
        // when the loader booted a counted entry; it requires boot-complete.target and marks the
        // entry good after it. This one records each blessing.
        'systemd-bless-boot.service': '[Unit]\nDescription=bless-boot stand-in\nDefaultDependencies=no\nRequires=boot-complete.target\nAfter=local-fs.target boot-complete.target\nConflicts=shutdown.target\nBefore=shutdown.target\n' +
          '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c \'readlink /run/booted-system >> /var/lib/blessed.log\'\n[Install]\nWantedBy=basic.target\n',
        'crashing.service': '[Unit]\nConditionPathExists=/run/booted-system/crash\n[Service]\nExecStart=/bin/sh -c "sleep 0.3; exit 1"\n[Install]\nWantedBy=multi-user.target\n',
      },
      // What NixOS's systemd-tmpfiles-setup makes at every boot (the state dir, /run/nixos-desync, the sentinel link).
      files: { '/etc/tmpfiles.d/nixos-desync.conf': ev.tmpfiles.join('\n') + '\n' },
      binds: [
        { src: '/nix/store', readOnly: true },
        { src: ROOT, readOnly: true },
        { src: process.execPath, readOnly: true },
        { src: shared, dst: SHARED },
      ],
    });
    expect((await c.exec([`${nix}/bin/nix-env`, '-p', PROFILE, '--set', top.good])).exitCode).toBe(0);
    const enable = await c.systemctl('enable', 'nixos-stage2.service', 'systemd-bless-boot.service', 'crashing.service', 'nixos-desync-verify-boot.service', 'nixos-desync-reboot.timer');
    expect(enable.exitCode, enable.stderr).toBe(0);
    await c.reboot();
  }, 120_000);

  afterAll(async () => {
    await c?.stop();
    for (const d of [tmp, shared]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('a healthy boot: verify-boot passes first, then boot-complete.target is reached; the system is verified', async () => {
    expect(await resolve('/run/booted-system')).toBe(top.good);
    expect((await c.systemctl('is-active', 'nixos-desync-verify-boot.service')).stdout.trim()).toBe('active');
    expect((await c.systemctl('is-active', 'boot-complete.target')).stdout.trim()).toBe('active');
    // Ordered: the target became active after the gate had finished.
    expect(Number(await show('boot-complete.target', 'ActiveEnterTimestampMonotonic'))).toBeGreaterThanOrEqual(Number(await show('nixos-desync-verify-boot.service', 'ExecMainExitTimestampMonotonic')));
    expect(await journal('nixos-desync-verify-boot.service')).toMatch(/is healthy: verified/);
    expect(state().verified.toplevel).toBe(top.good);
    expect(blessed()).toEqual([top.good]);
  }, 60_000);

  it('the loop goes the boot path; a unit of the new system fails at boot: no boot-complete.target, the last verified generation is the boot default again, one reboot', async () => {
    rmSync(join(shared, 'channel'));
    symlinkSync(top['nixpkgs-b']!, join(shared, 'channel'));
    writeFileSync(join(shared, 'next-toplevel'), top.bad!);
    const run = await c.systemctl('start', 'nixos-desync-upgrade.service');
    expect(run.exitCode, await journal('nixos-desync-upgrade.service')).toBe(0);
    expect(activations()).toEqual([`boot ${top.bad!.slice(11)}`]);
    expect(await resolve(PROFILE)).toBe(top.bad);

    await c.reboot({ allowDegraded: true });
    expect(await resolve('/run/booted-system')).toBe(top.bad);
    const log = await journal('nixos-desync-verify-boot.service');
    expect((await c.systemctl('is-failed', 'nixos-desync-verify-boot.service')).stdout.trim(), log).toBe('failed');
    expect(log).toMatch(/unhealthy: unit crashing\.service/);
    // boot-complete.target requires the gate: not reached, so systemd-bless-boot would not bless the entry.
    expect((await c.systemctl('is-active', 'boot-complete.target')).stdout.trim()).toBe('inactive');
    // Back through the activation unit: the verified system is the boot default again, and the host reboots once.
    expect(activations().slice(-1)).toEqual([`boot ${top.good!.slice(11)}`]);
    expect(await resolve(PROFILE)).toBe(top.good);
    expect(readFileSync(join(c.root, STATE, 'reboots.log'), 'utf8')).toBe(`reboot requested while ${top.bad} runs\n`);
    expect(blessed()).toEqual([top.good]);
    expect(state().reboot.fallbackRebootFor).toBe(top.bad);
  }, 90_000);

  it('the reboot into the verified generation is healthy: boot-complete.target is reached, and the rejected candidate is not tried again', async () => {
    await c.reboot();
    expect(await resolve('/run/booted-system')).toBe(top.good);
    expect((await c.systemctl('is-active', 'boot-complete.target')).stdout.trim()).toBe('active');
    expect(state().verified.toplevel).toBe(top.good);
    expect(blessed()).toEqual([top.good, top.good]);
    const before = activations().length;
    const run = await c.systemctl('start', 'nixos-desync-upgrade.service');
    expect(run.exitCode).not.toBe(0);
    expect(await journal('nixos-desync-upgrade.service')).toMatch(/rejected/);
    expect(activations()).toHaveLength(before);
    await c.systemctl('reset-failed', 'nixos-desync-upgrade.service');
  }, 90_000);

  it('the reboot timer is loaded and elapses at the next window start (00:00 Europe/Berlin) plus at most its random delay', async () => {
    expect((await c.systemctl('is-active', 'nixos-desync-reboot.timer')).stdout.trim()).toBe('active');
    const r = await c.systemctl('show', '--timestamp=utc', '-p', 'NextElapseUSecRealtime', '--value', 'nixos-desync-reboot.timer');
    const elapse = Date.parse(`${/(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC/.exec(r.stdout)?.slice(1).join('T')}Z`);
    const start = nextWindowStart({ days: null, start: '00:00', end: '00:00', timezone: 'Europe/Berlin' }, new Date())!.getTime();
    expect(elapse, r.stdout).toBeGreaterThanOrEqual(start);
    expect(elapse).toBeLessThan(start + 30 * 60_000);
    expect((await c.systemctl('list-timers', '--all', '--no-pager')).stdout).toContain('nixos-desync-reboot.timer');
    // A blocked reboot is asked again (exit 1 inside the window): systemd 252 takes Restart= on a oneshot.
    expect((await c.systemctl('show', '-p', 'Restart', '-p', 'RestartUSec', 'nixos-desync-reboot.service')).stdout).toBe('Restart=on-failure\nRestartUSec=15min\n');
    const names = ['nixos-desync-verify-boot.service', 'nixos-desync-reboot.service', 'nixos-desync-reboot.timer'];
    const v = await c.exec(['systemd-analyze', 'verify', ...names.map((n) => `/etc/systemd/system/${n}`)]);
    // Only what the Debian container lacks may be reported (NixOS's nix-daemon.socket, network-online's providers).
    expect((v.stderr + v.stdout).split('\n').filter((l) => l.trim() !== '' && !/nix-daemon\.socket|network-online/.test(l))).toEqual([]);
  });

  it('a required reboot: nixos-desync-reboot.service reboots the host for real from the loop\'s sandbox (systemctl reboot), into the new kernel', async () => {
    // The boot default gets a new kernel (through the activation unit, as the loop's boot path does).
    expect((await c.systemctl('start', `nixos-desync-activate@boot:${systemdEscapePath(top.kernel!)}.service`)).exitCode).toBe(0);
    writeFileSync(join(shared, 'real-reboot'), '');
    const leader = c.leader;
    // The container goes down under the command: its exit status is not the point.
    await c.systemctl('start', 'nixos-desync-reboot.service').catch(() => null);
    for (let i = 0; i < 300 && existsSync(`/proc/${leader}`); i++) await new Promise((res) => setTimeout(res, 100));
    expect(existsSync(`/proc/${leader}`), 'the container did not go down: systemctl reboot failed in the sandbox').toBe(false);
    rmSync(join(shared, 'real-reboot'));
    await c.reboot();
    expect(await resolve('/run/booted-system')).toBe(top.kernel);
    expect(readFileSync(join(c.root, STATE, 'reboots.log'), 'utf8').trim().split('\n').slice(-1)).toEqual([`reboot requested while ${top.good} runs`]);
    expect((await c.systemctl('is-active', 'boot-complete.target')).stdout.trim()).toBe('active');
    expect(state().verified.toplevel).toBe(top.kernel);
  }, 90_000);
});
