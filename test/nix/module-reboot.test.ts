// The module's reboot part (nix/module/reboot.nix), evaluated by real Nix with nixpkgs' real
// lib (test/nix/eval.nix): services.nixos-desync.reboot.* become the tool's reboot config
// (check-config passes it), nixos-desync-verify-boot.service runs in the loop's sandbox before
// boot-complete.target (RequiredBy= with systemd-boot's boot counting), the reboot timer fires
// where the tool's own schedule says the window opens (systemd-analyze calendar), and bad
// combinations fail with an assertion that says what to set instead.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTools } from '../helpers/tools.js';
import { CLI } from '../helpers/cli.js';
import { nixpkgsLibDir } from '../helpers/nixpkgs-lib.js';
import { execArgv, parseUnit, single } from '../helpers/units.js';
import { nextWindowStart } from '../../src/reboot/schedule.js';

const HERE = fileURLToPath(new URL('./', import.meta.url));
const ENV = { ...process.env, NIX_CONFIG: 'sandbox = false\nsubstituters =' };

interface Evaluated {
  failedAssertions: string[];
  configFile: string;
  tmpfiles: string[];
  units: Record<string, string>;
}

const ok = requireTools('nix-instantiate');

describe.skipIf(!ok)('NixOS module: reboot options and units (real Nix, nixpkgs lib)', () => {
  let tmp: string;
  let libDir: string;
  let pkgDir: string;

  const args = (hostFile: string): string[] => [
    join(HERE, 'eval.nix'),
    '--argstr', 'nixpkgsLib', libDir,
    '--argstr', 'packageDir', pkgDir,
    '--argstr', 'nixpkgsPath', join(tmp, 'nixpkgs'),
    '--arg', 'configModule', hostFile.startsWith('/') ? hostFile : join(HERE, hostFile),
  ];
  const evaluate = (hostFile: string): Evaluated =>
    JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '--read-write-mode', ...args(hostFile), '-A', 'inspect'], { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Evaluated;
  /** As `nixos-rebuild dry-build`: type errors and failed assertions, with NixOS's message. */
  const instantiate = (hostFile: string): { status: number | null; stderr: string } => {
    const r = spawnSync('nix-instantiate', [...args(hostFile), '-A', 'toplevel'], { env: ENV, encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  };
  const host = (name: string, text: string): string => {
    const file = join(tmp, 'hosts', name);
    mkdirSync(join(tmp, 'hosts'), { recursive: true });
    writeFileSync(file, text);
    return file;
  };
  const effective = (configFile: string): Record<string, unknown> =>
    JSON.parse(execFileSync(process.execPath, [CLI, 'check-config', '--config', configFile], { env: ENV, encoding: 'utf8' })) as Record<string, unknown>;
  /** [Service] of a unit of the loop's sandbox, without what differs between its commands (and the loop's stop hook, ExecStopPost). */
  const sandbox = (unit: string): Record<string, string[]> => {
    const { ExecStart: _e, ExecStopPost: _p, RuntimeDirectory: _r, WorkingDirectory: _w, RemainAfterExit: _a, Restart: _s, RestartSec: _t, ...rest } = parseUnit(unit).Service!;
    return rest;
  };

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'nixos-desync-modreboot-'));
    chmodSync(tmp, 0o755); // check-config runs inside a Nix build, as a nixbld user
    libDir = nixpkgsLibDir();
    pkgDir = join(tmp, 'pkg');
    mkdirSync(join(pkgDir, 'bin'), { recursive: true });
    writeFileSync(join(pkgDir, 'bin', 'nixos-desync'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`);
    chmodSync(join(pkgDir, 'bin', 'nixos-desync'), 0o755);
    mkdirSync(join(tmp, 'nixpkgs'));
    writeFileSync(join(tmp, 'nixpkgs', 'default.nix'), '{ ... }: { }\n');
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('reboot.* become the tool\'s reboot config; the reboot unit is a command of the loop\'s sandbox', () => {
    const ev = evaluate('host-reboot.nix');
    expect(ev.failedAssertions).toEqual([]);
    expect(effective(ev.configFile).reboot).toEqual({
      enable: true,
      // rebootWindow's lower/upper are the window's start/end; timeZone is `timezone`.
      window: { days: ['Sat', 'Sun'], start: '22:30', end: '01:00', timezone: 'Europe/Berlin' },
      triggers: ['kernel', 'initrd', 'switch-inhibitors'],
      command: ['/run/current-system/sw/bin/systemctl', 'reboot'],
      // /run is read-only for the loop: the sentinel is in its own directory, linked from /run/reboot-required.
      sentinel: '/run/nixos-desync/reboot-required',
      blockOnAlerts: {
        prometheus: { url: 'http://prometheus.example:9090', bearerTokenFile: '/run/secrets/prometheus-token', basicAuth: null, caFile: null, timeout: '30s' },
        alertFilter: '^(NodeDown|Backup.*)$',
        firingOnly: true,
      },
    });
    expect(ev.tmpfiles).toEqual(expect.arrayContaining(['d /run/nixos-desync 0755 root root - -', 'L /run/reboot-required - - - - /run/nixos-desync/reboot-required']));

    const reboot = parseUnit(ev.units['nixos-desync-reboot.service']!);
    expect(execArgv(single(reboot, 'Service', 'ExecStart')!)).toEqual([`${pkgDir}/bin/nixos-desync`, 'reboot', '--config', ev.configFile]);
    expect(sandbox(ev.units['nixos-desync-reboot.service']!)).toEqual(sandbox(ev.units['nixos-desync-upgrade.service']!));
    expect(reboot.Service!.ReadWritePaths).toContain('/run/nixos-desync');
    // Never in the middle of a run or of the boot's health gate (both hold the loop's lock).
    expect(reboot.Unit!.After![0]!.split(' ')).toEqual(expect.arrayContaining(['nixos-desync-upgrade.service', 'nixos-desync-verify-boot.service']));
    expect(reboot.Install).toBeUndefined();
    // Blocked inside the window (exit 1) or the lock held (75): asked again every 15 minutes; outside it exits 0.
    expect(reboot.Service).toMatchObject({ Restart: ['on-failure'], RestartSec: ['15min'] });
  });

  it.skipIf(!requireTools('systemd-analyze'))('the reboot timer fires when the tool\'s schedule opens the window (days, time zone, DST), delayed at random within it', () => {
    const ev = evaluate('host-reboot.nix');
    const timer = parseUnit(ev.units['nixos-desync-reboot.timer']!);
    expect(timer.Timer).toEqual({
      OnCalendar: ['Sat,Sun *-*-* 22:30:00 Europe/Berlin'],
      RandomizedDelaySec: ['45min'],
      FixedRandomDelay: ['true'],
      // A window missed while powered off needs no catch-up: that boot applied the new system.
      Persistent: ['false'],
      Unit: ['nixos-desync-reboot.service'],
    });
    expect(timer.Install).toEqual({ WantedBy: ['timers.target'] });
    // systemd's next elapses (30, across the end of DST on 2027-10-31) are the tool's window starts.
    const base = new Date('2027-10-01T12:00:00Z');
    const r = spawnSync('systemd-analyze', ['calendar', '--iterations=30', `--base-time=@${base.getTime() / 1000}`, single(timer, 'Timer', 'OnCalendar')!], { env: { ...ENV, TZ: 'UTC' }, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const systemd = [...r.stdout.matchAll(/(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC/g)].map((m) => new Date(`${m[1]!.replace(' ', 'T')}Z`).toISOString());
    expect(systemd).toHaveLength(30);
    const window = { days: ['Sat', 'Sun'] as const, start: '22:30', end: '01:00', timezone: 'Europe/Berlin' };
    const tool: string[] = [];
    for (let t: Date | null = base; tool.length < 30 && t !== null;) {
      t = nextWindowStart(window, t);
      if (t !== null) tool.push(t.toISOString());
    }
    expect(systemd).toEqual(tool);
    expect(tool).toContain('2027-10-30T20:30:00.000Z'); // CEST
    expect(tool).toContain('2027-11-06T21:30:00.000Z'); // CET
  });

  it('verify-boot: at every boot, in the loop\'s sandbox, before boot-complete.target; no reboot timer without reboot.enable', () => {
    const ev = evaluate('host-minimal.nix');
    expect(ev.failedAssertions).toEqual([]);
    expect(effective(ev.configFile).reboot).toMatchObject({ enable: false, window: null, blockOnAlerts: null, sentinel: '/run/nixos-desync/reboot-required' });
    expect(Object.keys(ev.units).filter((u) => u.startsWith('nixos-desync-reboot'))).toEqual([]);
    const vb = parseUnit(ev.units['nixos-desync-verify-boot.service']!);
    expect(execArgv(single(vb, 'Service', 'ExecStart')!)).toEqual([`${pkgDir}/bin/nixos-desync`, 'verify-boot', '--config', ev.configFile]);
    expect(sandbox(ev.units['nixos-desync-verify-boot.service']!)).toEqual(sandbox(ev.units['nixos-desync-upgrade.service']!));
    expect(vb.Service).toMatchObject({ Type: ['oneshot'], RemainAfterExit: ['true'], WorkingDirectory: ['/run/nixos-desync-verify-boot'] });
    expect(vb.Unit!.Before).toEqual(['boot-complete.target']);
    // After the whole boot (as systemd-boot-check-no-failures.service) and after a recovery.
    expect(vb.Unit!.After![0]!.split(' ')).toEqual(expect.arrayContaining(['default.target', 'multi-user.target', 'graphical.target', 'nixos-desync-recover.service']));
    expect(vb.Unit!['X-RestartIfChanged']).toEqual(['false']);
    // Without boot counting nothing requires it: boot-complete.target is not pulled in for it.
    expect(vb.Install).toEqual({ WantedBy: ['multi-user.target'] });
    // A run caught up at boot waits for the boot's verdict.
    expect(parseUnit(ev.units['nixos-desync-upgrade.service']!).Unit!.After![0]).toContain('nixos-desync-verify-boot.service');
  });

  it('with systemd-boot\'s boot counting, boot-complete.target requires verify-boot; a nixpkgs without the option evaluates', () => {
    const loader = (bootCounting: boolean): string =>
      `{ lib, ... }: {\n  options.boot.loader.systemd-boot.enable = lib.mkOption { type = lib.types.bool; default = false; };\n` +
      (bootCounting ? '  options.boot.loader.systemd-boot.bootCounting.enable = lib.mkOption { type = lib.types.bool; default = false; };\n' : '') +
      `  config.boot.loader.systemd-boot = { enable = true; ${bootCounting ? 'bootCounting.enable = true; ' : ''}};\n  config.services.nixos-desync.enable = true;\n}\n`;
    const counting = parseUnit(evaluate(host('counting.nix', loader(true))).units['nixos-desync-verify-boot.service']!);
    expect(counting.Install).toEqual({ WantedBy: ['multi-user.target'], RequiredBy: ['boot-complete.target'] });
    const older = parseUnit(evaluate(host('no-counting-option.nix', loader(false))).units['nixos-desync-verify-boot.service']!);
    expect(older.Install).toEqual({ WantedBy: ['multi-user.target'] });
    // Without the loop there is nothing to verify.
    expect(Object.keys(evaluate('host-no-loop.nix').units)).not.toContain('nixos-desync-verify-boot.service');
  });

  describe('bad combinations fail with an assertion that says what to set instead', () => {
    const failed = (text: string): string => {
      const r = instantiate(host('bad.nix', text));
      expect(r.status).toBe(1);
      return r.stderr.replace(/\s+/g, ' ');
    };

    it('system.autoUpgrade.allowReboot / rebootWindow next to the loop point at reboot.enable / reboot.window', () => {
      const msg = 'system.autoUpgrade.allowReboot/rebootWindow are set, but nixos-desync\'s loop does the upgrades (and system.autoUpgrade must stay off): set services.nixos-desync.reboot.enable = true instead of allowReboot, and services.nixos-desync.reboot.window = { lower; upper; } instead of rebootWindow';
      expect(failed('{ ... }: { system.autoUpgrade.allowReboot = true; services.nixos-desync.enable = true; }')).toContain(msg);
      expect(failed('{ ... }: { system.autoUpgrade.rebootWindow = { lower = "01:00"; upper = "05:00"; }; services.nixos-desync.enable = true; }')).toContain(msg);
      // The exporter alone next to system.autoUpgrade: its reboots stay system.autoUpgrade's.
      const r = instantiate(host('monitor.nix', '{ ... }: { system.autoUpgrade = { enable = true; allowReboot = true; }; services.nixos-desync = { enable = true; upgrade.enable = false; }; }'));
      expect(r.status, r.stderr).toBe(0);
      // The migration: the same window, moved.
      const moved = instantiate(host('moved.nix', '{ ... }: { services.nixos-desync = { enable = true; reboot = { enable = true; window = { lower = "01:00"; upper = "05:00"; }; }; }; }'));
      expect(moved.status, moved.stderr).toBe(0);
    });

    it('reboot.enable without the loop', () => {
      expect(failed('{ ... }: { services.nixos-desync = { enable = true; upgrade.enable = false; reboot.enable = true; }; }'))
        .toContain('services.nixos-desync.reboot.enable needs services.nixos-desync.upgrade.enable');
    });

    it('a random delay that does not fit in the window (crossing midnight counts the next day)', () => {
      const delayed = (w: string, d: string): string => `{ ... }: { services.nixos-desync = { enable = true; reboot = { enable = true; window = { ${w} }; randomizedDelaySec = "${d}"; }; }; }`;
      expect(failed(delayed('lower = "02:00"; upper = "02:30";', '30m'))).toContain(
        'services.nixos-desync.reboot.randomizedDelaySec = "30m" is not shorter than the reboot window (02:00–02:30, 30 minutes): a delayed reboot would land outside it and be refused.',
      );
      expect(failed(delayed('lower = "23:00"; upper = "01:00";', '2h'))).toContain('(23:00–01:00, 120 minutes)');
      for (const [w, d] of [['lower = "02:00"; upper = "02:30";', '1799s'], ['lower = "23:00"; upper = "01:00";', '119min']] as const) {
        const r = instantiate(host('fits.nix', delayed(w, d)));
        expect(r.status, `${w} ${d}: ${r.stderr}`).toBe(0);
      }
    });

    it('typed reboot keys through settings.reboot; malformed times, days and delays', () => {
      expect(failed('{ ... }: { services.nixos-desync = { enable = true; settings.reboot.triggers = [ "firmware" ]; }; }')).toContain(
        'services.nixos-desync.settings.reboot: set enable, window, triggers and blockOnAlerts through services.nixos-desync.reboot.*',
      );
      const typeError = (text: string, option: string, type: string): void =>
        expect(failed(`{ ... }: { services.nixos-desync = { enable = true; reboot = { ${text} }; }; }`)).toContain(`A definition for option \`services.nixos-desync.reboot.${option}' is not of type \`${type}'.`);
      typeError('window = { lower = "2:00"; upper = "05:00"; };', 'window.lower', '24-hour local time HH:MM');
      typeError('window = { lower = "02:00"; upper = "24:00"; };', 'window.upper', '24-hour local time HH:MM');
      typeError('window = { lower = "02:00"; upper = "05:00"; days = [ "Monday" ]; };', 'window.days."[definition 1-entry 1]"', 'one of "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"');
      typeError('enable = true; randomizedDelaySec = "1h 30min";', 'randomizedDelaySec', 'time span: 0, or a number followed by s, sec, m, min, h or hr (30m, 45min, 2h)');
      // Prometheus credentials are files outside the store, as for rollout.prometheus (the same options).
      typeError('enable = true; blockOnAlerts.prometheus = { url = "http://p.example"; bearerTokenFile = ./token; };', 'blockOnAlerts.prometheus.bearerTokenFile', 'null or absolute path as a string (not a path literal: that would copy the file into the world-readable Nix store)');
      expect(failed('{ ... }: { services.nixos-desync = { enable = true; reboot.blockOnAlerts.prometheus = { url = "http://p.example"; bearerTokenFile = "${builtins.toFile "token" "x"}"; }; }; }')).toContain(
        'services.nixos-desync.reboot.blockOnAlerts.prometheus: a credential file is in the Nix store, which every local user can read.',
      );
      typeError('blockOnAlerts.prometheus.url = "http://user:pw@p.example";', 'blockOnAlerts.prometheus.url', 'http:// or https:// URL without credentials, query or fragment');
      typeError('triggers = [ "kernel-version" ];', 'triggers."[definition 1-entry 1]"', 'one of "kernel", "initrd", "kernel-modules", "firmware", "kernel-params", "switch-inhibitors"');
    });
  });
});
