// Long file: one real container booted once for every unit test of the module (boots are the cost).
// The NixOS module's generated units (nix/module/*.nix, rendered by test/nix/eval.nix as NixOS
// renders them) loaded and started by a real systemd (test/helpers/systemd.ts): the sandboxed
// loop builds (a stand-in build), starts nixos-desync-activate@test:<toplevel>.service with
// `systemctl start` from inside its sandbox (as uid 0 without capabilities: systemd's private
// socket) and waits for it, runs the health gate, makes the healthy system the boot default
// through nixos-desync-activate@boot:…, and rolls an unhealthy one back the same way, or holds
// back the desync whose unit failed (runtime hold-back) and activates the host without it; the
// DynamicUser exporter reads the monitored upgrade unit with `systemctl show` over D-Bus.
//
// What differs from NixOS: the container runs Debian, without Nix. The units are used as
// generated (one exception, at the evaluation below: eval.nix's writeShellScript stand-in
// cannot make an executable); the store paths they name are real: the package
// (bin/nixos-desync runs this checkout's dist/ with the host's node, both bound in read-only),
// pkgs.systemd (links to Debian's systemctl/systemd-escape), pkgs.nix (a nix-store that only
// registers GC roots, a nix-env that only sets a profile), the toplevels (a
// switch-to-configuration that links /run/current-system and starts units) and the channel's
// nixpkgs are small directories added to the host's store, which is bound in read-only.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTools } from '../helpers/tools.js';
import { evaluateUnits, moduleStandins, storePath as addToStore, type Tree } from '../helpers/module-units.js';
import { bootSystemd, requireSystemd, type SystemdContainer } from '../helpers/systemd.js';
import { systemdEscapePath } from '../../src/system/nixos.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const HERE = fileURLToPath(new URL('./', import.meta.url));
const HTTP_GET = join(ROOT, 'test/helpers/http-get.mjs');
/** A test directory bound read-write into the container. */
const SHARED = '/srv/nixos-desync-test';

const ok = requireTools('nix-instantiate', 'nix-store') && requireSystemd();

describe.skipIf(!ok)('the module\'s units in a real systemd', () => {
  let tmp: string;
  let shared: string;
  let c: SystemdContainer;
  let units: Record<string, string>;
  let cli: string;
  let configFile: string;
  const top: Record<string, string> = {};
  const nixpkgsRev: Record<string, string> = {};
  /**
   * The channel moves to a new nixpkgs and the stand-in build will leave `toplevelPath`, or
   * `heldPath` when the synapse desync's pin is not the candidate (a runtime hold-back's rebuild).
   */
  function nextRun(rev: string, toplevelPath: string, heldPath?: string): void {
    rmSync(join(shared, 'channel'));
    symlinkSync(nixpkgsRev[rev]!, join(shared, 'channel'));
    writeFileSync(join(shared, 'next-toplevel'), toplevelPath);
    rmSync(join(shared, 'next-toplevel-held'), { force: true });
    if (heldPath !== undefined) writeFileSync(join(shared, 'next-toplevel-held'), heldPath);
    writeFileSync(join(shared, 'activations.log'), '');
  }
  const journal = async (unit: string): Promise<string> => (await c.exec(['journalctl', '--no-pager', '-o', 'cat', '-u', unit])).stdout;

  const storePath = (name: string, tree: Tree): string => addToStore(tmp, name, tree);

  /**
   * A NixOS system stand-in: switch-to-configuration `test` links /run/current-system and
   * (re)starts `startUnits`; `boot` records itself. Every call is logged with the cgroup it
   * ran in (which unit ran it) to the shared directory.
   */
  function toplevel(name: string, startUnits: string[], sleepBeforeLink = 0, files: Tree = {}): string {
    return storePath(`nixos-system-${name}`, {
      ...files,
      'nixos-version': '25.11.20251201.0000000\n',
      'bin/switch-to-configuration': {
        exec: [
          '#!/bin/sh',
          'set -eu',
          'PATH=$PATH:/usr/bin:/bin # the unit\'s PATH has the stand-in systemctl; Debian\'s coreutils',
          'top=${0%/bin/switch-to-configuration}',
          `echo "$1 $(basename "$top") $(grep '^0::' /proc/self/cgroup | cut -d: -f3-)" >> ${SHARED}/activations.log`,
          'case "$1" in',
          `  test) sleep ${sleepBeforeLink}`,
          '    ln -sfn "$top" /run/current-system',
          startUnits.length ? `    systemctl restart ${startUnits.join(' ')}` : '    :',
          `    echo "done $(basename "$top")" >> ${SHARED}/activations.log ;;`,
          '  boot) ;;',
          '  *) exit 1 ;;',
          'esac',
          '',
        ].join('\n'),
      },
    });
  }

  /** Every line the stand-in switch-to-configuration logged: `test|boot <system> <cgroup>` when it starts, `done <system>` after `test`. */
  const activationLog = (): string[] => readFileSync(join(shared, 'activations.log'), 'utf8').trim().split('\n').filter((l) => l !== '');
  const activations = (): string[] => activationLog().filter((l) => !l.startsWith('done '));
  const currentSystem = (): string => readlinkSync(join(c.root, 'run/current-system'));

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'nixos-desync-modsd-'));
    shared = mkdtempSync(join(tmpdir(), 'nixos-desync-modsd-shared-'));
    writeFileSync(join(shared, 'activations.log'), '');
    const { pkg, systemd, nix } = moduleStandins(tmp);
    // The channel: a link the test points at a new nixpkgs tree before each run (a new candidate).
    for (const rev of ['a', 'b', 'c', 'd', 'e', 'f']) nixpkgsRev[rev] = storePath(`nixpkgs-${rev}`, { '.git-revision': rev.repeat(40) + '\n', 'default.nix': '{ ... }: { hello = { name = "hello"; }; }\n' });
    const nixpkgs = `${SHARED}/channel`;
    symlinkSync(nixpkgsRev.a!, join(shared, 'channel'));
    const build = storePath('system-build', {
      'bin/build': {
        exec: [
          '#!/bin/sh',
          '# nixos-rebuild build stand-in: ./result = the toplevel the test chose; the held-back one when',
          "# the candidate pin set's synapse.nix does not name the candidate (as a real build would differ).",
          `top=$(/bin/cat ${SHARED}/next-toplevel)`,
          `if [ -e ${SHARED}/next-toplevel-held ] && ! /bin/grep -qF "$(/bin/readlink ${SHARED}/channel)" /var/lib/nixos-desync/pins/synapse.nix; then top=$(/bin/cat ${SHARED}/next-toplevel-held); fi`,
          'exec /bin/ln -s "$top" result',
          '',
        ].join('\n'),
      },
    });
    top.one = toplevel('one', ['app.service']);
    top.two = toplevel('two', ['app.service']);
    top.bad = toplevel('bad', ['app.service', 'crashing.service']);
    top.slow = toplevel('slow', ['app.service'], 3);
    // matrix-synapse from the synapse desync: the candidate's crashes once started, the pinned one runs.
    top.synapseNew = toplevel('synapse-new', ['app.service', 'matrix-synapse.service'], 0, { 'synapse-crashes': '' });
    top.synapseHeld = toplevel('synapse-held', ['app.service', 'matrix-synapse.service']);

    // pkgs.path, also desyncs.synapse.path before its first pin: a tree that exists where this evaluates.
    const ev = evaluateUnits(join(HERE, 'host-systemd.nix'), pkg, nixpkgsRev.a!, { systemdPackage: systemd, nixPackage: nix, nixpkgs, build: [`${build}/bin/build`] });
    units = ev.units;
    cli = `${pkg}/bin/nixos-desync`;
    configFile = ev.configFile;
    expect(Object.keys(units).sort()).toEqual([
      'nixos-desync-activate@.service', 'nixos-desync-exporter.service', 'nixos-desync-recover.service',
      'nixos-desync-upgrade.service', 'nixos-desync-upgrade.timer', 'nixos-desync-verify-boot.service',
    ]);

    c = await bootSystemd({
      units: {
        ...units,
        // Every activation restarts it: no start rate limit (the tests activate more than 5 times in 10 s).
        'app.service': '[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sleep infinity\n',
        'crashing.service': '[Service]\nExecStart=/bin/sh -c "sleep 0.3; exit 1"\n',
        // Its behaviour comes from the running system, as a NixOS unit's ExecStart would.
        'matrix-synapse.service': '[Service]\nExecStart=/bin/sh -c "if [ -e /run/current-system/synapse-crashes ]; then sleep 0.3; echo synapse: homeserver.yaml: unknown key; exit 1; fi; exec sleep infinity"\n',
        // What exporter.upgradeUnit watches (system.autoUpgrade's unit on a monitor-only host), with its timer.
        'nixos-upgrade.service': '[Service]\nType=oneshot\nExecStart=/bin/true\n',
        'nixos-upgrade.timer': '[Timer]\nOnCalendar=2099-01-01\n',
      },
      binds: [
        { src: '/nix/store', readOnly: true },
        { src: ROOT, readOnly: true },
        { src: process.execPath, readOnly: true },
        { src: shared, dst: SHARED },
      ],
    });
    // What NixOS's tmpfiles rules and activation would have made before the first run.
    for (const rule of ev.tmpfiles) {
      const [type, path] = rule.split(' ');
      if (type === 'd') expect((await c.exec(['install', '-d', '-m', '0755', path!])).exitCode).toBe(0);
    }
    writeFileSync(join(shared, 'next-toplevel'), top.one);
    expect((await c.exec(['ln', '-sfn', top.one, '/run/current-system'])).exitCode).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await c?.stop();
    for (const d of [tmp, shared]) if (d) rmSync(d, { recursive: true, force: true });
  });

  const instance = (action: string, toplevelPath: string): string => `nixos-desync-activate@${action}:${systemdEscapePath(toplevelPath)}.service`;

  it('every generated unit loads without complaint', async () => {
    for (const name of Object.keys(units).filter((n) => !n.includes('@'))) {
      const r = await c.systemctl('show', '-p', 'LoadState', '-p', 'LoadError', name);
      expect(r.stdout, name).toMatch(/^LoadState=loaded$/m);
    }
    const r = await c.exec(['systemd-analyze', 'verify', ...Object.keys(units).filter((n) => !n.includes('@')).map((n) => `/etc/systemd/system/${n}`)]);
    // Only what the Debian container lacks may be reported (NixOS's nix-daemon.socket, network-online's providers).
    const complaints = (r.stderr + r.stdout).split('\n').filter((l) => l.trim() !== '' && !/nix-daemon\.socket|network-online/.test(l));
    expect(complaints).toEqual([]);
  });

  it('the sandboxed loop activates a healthy system through nixos-desync-activate@test and @boot', async () => {
    nextRun('b', top.two!);
    const r = await c.systemctl('start', 'nixos-desync-upgrade.service');
    const log = await journal('nixos-desync-upgrade.service');
    expect(r.exitCode, log + await journal('nixos-desync-activate@*')).toBe(0);
    expect(currentSystem()).toBe(top.two);
    // Each step ran in its own instance of the activation unit, not in the loop's sandbox.
    expect(activations()).toEqual([
      `test ${top.two!.slice(11)} /system.slice/system-nixos\\x2ddesync\\x2dactivate.slice/${instance('test', top.two!)}`,
      `boot ${top.two!.slice(11)} /system.slice/system-nixos\\x2ddesync\\x2dactivate.slice/${instance('boot', top.two!)}`,
    ]);
    expect(log).toMatch(/health\s+healthy/);
    // The profile generation, set by the activation unit (the loop cannot write /nix/var).
    expect(readlinkSync(join(c.root, 'nix/var/nix/profiles/system-1-link'))).toBe(top.two);
  }, 120_000);

  it('an unhealthy system (a unit failing after the activation) is rolled back through the activation unit', async () => {
    nextRun('c', top.bad!);
    const r = await c.systemctl('start', 'nixos-desync-upgrade.service');
    const log = await journal('nixos-desync-upgrade.service');
    expect(r.exitCode, log).not.toBe(0);
    expect(log).toMatch(/health\s+FAILED — unit crashing\.service/);
    // synapse moved in this run too, but crashing.service is not one of its units: no hold-back.
    expect(log).toMatch(/holdback\s+not applicable \(no desync that moved claims the failures\)/);
    expect(currentSystem()).toBe(top.two);
    expect(activations().map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual([`test ${top.bad!.slice(11)}`, `test ${top.two!.slice(11)}`]);
    expect((await c.exec(['test', '-e', '/nix/var/nix/profiles/system-2-link'])).exitCode).not.toBe(0);
    await c.systemctl('reset-failed', 'crashing.service', 'nixos-desync-upgrade.service');
  }, 120_000);

  it('the DynamicUser exporter reads the upgrade unit with systemctl over D-Bus and serves the loop\'s state', async () => {
    expect((await c.systemctl('start', 'nixos-upgrade.timer')).exitCode).toBe(0);
    expect((await c.systemctl('start', 'nixos-upgrade.service')).exitCode).toBe(0);
    expect((await c.systemctl('start', 'nixos-desync-exporter.service')).exitCode).toBe(0);
    let body = '';
    for (let i = 0; i < 100; i++) {
      const r = await c.exec([process.execPath, HTTP_GET, 'http://127.0.0.1:9793/metrics']);
      body = r.stdout;
      if (r.exitCode === 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const log = await journal('nixos-desync-exporter.service');
    const pid = (await c.systemctl('show', '-p', 'MainPID', '--value', 'nixos-desync-exporter.service')).stdout.trim();
    const uid = /^Uid:\s+([0-9]+)/m.exec(readFileSync(join(c.root, 'proc', pid, 'status'), 'utf8'));
    expect(Number(uid![1])).toBeGreaterThan(0); // a dynamic user, not root
    expect(body, log).toMatch(/^nixos_desync_collector_success\{collector="upgrade_unit"\} 1$/m);
    expect(body).toMatch(/^nixos_desync_upgrade_unit_last_run_success\{unit="nixos-upgrade\.service"\} 1$/m);
    expect(body).toMatch(/^nixos_desync_upgrade_unit_running\{unit="nixos-upgrade\.service"\} 0$/m);
    expect(body).toMatch(/^nixos_desync_runs_total\{result="success"\} 1$/m);
    expect(body).toMatch(/^nixos_desync_runs_total\{result="rolled_back"\} 1$/m);
    expect(body).toMatch(/^nixos_desync_last_run_success 0$/m);
  }, 60_000);

  /** What systemd logged of the recovery unit's starts: skipped (no journal: its condition), finished, failed. */
  const recoverEvents = async (): Promise<{ skipped: number; finished: number; failed: number }> => {
    const j = await journal('nixos-desync-recover.service');
    const n = (re: RegExp): number => j.split('\n').filter((l) => re.test(l)).length;
    return { skipped: n(/skipped because of an unmet condition|being skipped/), finished: n(/^Finished nixos-desync-recover\.service/), failed: n(/^Failed to start nixos-desync-recover\.service/) };
  };
  /** Waits until the recovery unit has finished, failed or been skipped once more than in `before`. */
  async function recoverAfter(before: Awaited<ReturnType<typeof recoverEvents>>): Promise<Awaited<ReturnType<typeof recoverEvents>>> {
    const total = (e: typeof before): number => e.skipped + e.finished + e.failed;
    let r = await recoverEvents();
    for (let i = 0; i < 300 && total(r) === total(before); i++) {
      await new Promise((res) => setTimeout(res, 100));
      r = await recoverEvents();
    }
    return { skipped: r.skipped - before.skipped, finished: r.finished - before.finished, failed: r.failed - before.failed };
  }
  const verified = async (): Promise<unknown> => (JSON.parse((await c.exec([cli, 'status', '--json', '--config', configFile])).stdout) as { system: { verified: unknown } }).system.verified;

  it('a run that ended without a journal (the healthy and the rolled-back one above) started the recovery, which did nothing', async () => {
    // Started by the loop's unit (ExecStopPost= after each run, OnFailure= after the failed one), never by hand here.
    const r = await recoverEvents();
    expect(r.skipped).toBeGreaterThanOrEqual(2);
    expect(r).toMatchObject({ finished: 0, failed: 0 });
  });

  it('the loop\'s unit killed (SIGKILL) during an activation: nixos-desync-recover.service starts by itself, waits for that activation, and rolls back to the verified system', async () => {
    nextRun('d', top.slow!);
    const before = await recoverEvents();
    expect((await c.systemctl('start', '--no-block', 'nixos-desync-upgrade.service')).exitCode).toBe(0);
    for (let i = 0; i < 200 && !activations().some((l) => l.startsWith('test ')); i++) await new Promise((res) => setTimeout(res, 50));
    expect(activations()[0]).toMatch(/^test \S+-nixos-system-slow /);
    expect((await c.systemctl('kill', '--signal=SIGKILL', 'nixos-desync-upgrade.service')).exitCode).toBe(0);
    const r = await recoverAfter(before);
    const log = await journal('nixos-desync-recover.service');
    expect(r, log).toMatchObject({ finished: 1, failed: 0 }); // a second start (the other hook) may find nothing left
    // The killed run's activation went on in its own unit; the rollback started only after it was done.
    expect(activationLog().map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual([
      `test ${top.slow!.slice(11)}`, `done ${top.slow!.slice(11)}`, `test ${top.two!.slice(11)}`, `done ${top.two!.slice(11)}`,
    ]);
    expect(activations().slice(-1)[0]).toMatch(new RegExp(`^test ${top.two!.slice(11)} .*nixos-desync-activate@test`));
    expect(currentSystem()).toBe(top.two);
    expect(log).toMatch(/rolled back/);
    expect(await verified()).toBe(true);
    expect((await c.exec(['test', '-e', '/var/lib/nixos-desync/journal.json'])).exitCode).not.toBe(0);
    await c.systemctl('reset-failed', 'nixos-desync-upgrade.service');
  }, 60_000);

  it('the loop\'s unit stopped (systemctl stop) during an activation: the loop rolls back after that activation, and the recovery finds nothing to do', async () => {
    nextRun('f', top.slow!);
    const before = await recoverEvents();
    expect((await c.systemctl('start', '--no-block', 'nixos-desync-upgrade.service')).exitCode).toBe(0);
    for (let i = 0; i < 200 && !activations().some((l) => l.startsWith('test ')); i++) await new Promise((res) => setTimeout(res, 50));
    expect((await c.systemctl('stop', 'nixos-desync-upgrade.service')).exitCode).toBe(0);
    const r = await recoverAfter(before);
    const log = await journal('nixos-desync-upgrade.service');
    // Started by ExecStopPost= and by OnFailure= (the stopped run exits 1): skipped each time, no journal.
    expect(r.skipped, log).toBeGreaterThanOrEqual(1);
    expect(r).toMatchObject({ finished: 0, failed: 0 });
    expect(activationLog().map((l) => l.split(' ').slice(0, 2).join(' ')), log).toEqual([
      `test ${top.slow!.slice(11)}`, `done ${top.slow!.slice(11)}`, `test ${top.two!.slice(11)}`, `done ${top.two!.slice(11)}`,
    ]);
    expect(currentSystem()).toBe(top.two);
    expect(await verified()).toBe(true);
    await c.systemctl('reset-failed', 'nixos-desync-upgrade.service');
  }, 60_000);
  it('runtime hold-back: matrix-synapse.service (the synapse desync\'s unit) fails after the activation; synapse stays on its pin and the host is upgraded', async () => {
    const pinFile = join(c.root, 'var/lib/nixos-desync/pins/synapse.nix');
    expect(readFileSync(pinFile, 'utf8')).toContain(nixpkgsRev.b); // pinned by the first healthy run
    nextRun('e', top.synapseNew!, top.synapseHeld!);
    const r = await c.systemctl('start', 'nixos-desync-upgrade.service');
    const log = await journal('nixos-desync-upgrade.service');
    expect(r.exitCode, log + await journal('nixos-desync-activate@*')).toBe(0);
    // Attributed by the real `systemctl list-units --failed`, with the unit's own journal lines as evidence.
    expect(log).toMatch(/holdback\s+synapse: held back at its pin — unit matrix-synapse\.service \(failed after the activation\)/);
    expect(log).toMatch(/synapse: homeserver\.yaml: unknown key/);
    expect(log).toMatch(/holdback\s+healthy with synapse held back: the host is upgraded/);
    // Two activations of the new candidate's systems, one rollback between them, each through the activation unit.
    expect(activations().map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual([
      `test ${top.synapseNew!.slice(11)}`, `test ${top.two!.slice(11)}`, `test ${top.synapseHeld!.slice(11)}`, `boot ${top.synapseHeld!.slice(11)}`,
    ]);
    expect(currentSystem()).toBe(top.synapseHeld);
    expect((await c.systemctl('is-active', 'matrix-synapse.service')).stdout.trim()).toBe('active');
    // synapse lags one rebuild on its old pin; the system follows the new channel revision.
    const pin = readFileSync(pinFile, 'utf8');
    expect(pin).toContain(nixpkgsRev.b);
    expect(pin).toMatch(/desyncAge = 1;/);
    const profiles = join(c.root, 'nix/var/nix/profiles');
    expect(readlinkSync(join(profiles, readlinkSync(join(profiles, 'system'))))).toBe(top.synapseHeld);
  }, 120_000);
});
