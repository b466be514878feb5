// The real-systemd harness itself (test/helpers/systemd.ts): it boots, commands inside cannot
// touch the host (no host capabilities, own network), unit files load, host programs reach
// the container through the wrappers, a reboot keeps the disk but not /run, and a stop leaves
// nothing behind.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootSystemd, requireSystemd, sweepStale, type SystemdContainer } from './systemd.js';

const ok = requireSystemd();

describe.skipIf(!ok)('real systemd in a container (test/helpers/systemd.ts)', () => {
  let c: SystemdContainer;
  let shared: string;

  beforeAll(async () => {
    shared = mkdtempSync(join(tmpdir(), 'nd-systemd-shared-'));
    writeFileSync(join(shared, 'from-host'), 'hello\n');
    c = await bootSystemd({
      binds: [{ src: shared, dst: '/srv/shared' }],
      units: {
        'hello.service': '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/sh -c "echo hi > /srv/shared/from-unit"\n',
      },
    });
  });
  afterAll(async () => {
    await c?.stop();
    if (shared) rmSync(shared, { recursive: true, force: true });
  });

  it('boots to `running` with systemd as PID 1 of its own PID namespace', async () => {
    expect(c.bootState).toBe('running');
    const r = await c.exec(['cat', '/proc/1/comm']);
    expect(r.stdout.trim()).toBe('systemd');
    expect((await c.exec(['hostname'])).stdout.trim()).toBe(c.name);
    console.log(`real systemd: booted in ${Math.round(c.bootMs)} ms`);
  });

  it('commands inside have no capability the container lacks: `date -s` cannot set the host clock', async () => {
    const caps = /^CapBnd:\s+(\S+)$/m.exec((await c.exec(['cat', '/proc/self/status'])).stdout)![1]!;
    const CAP_SYS_TIME = 25n;
    const CAP_SYS_MODULE = 16n;
    expect((BigInt(`0x${caps}`) >> CAP_SYS_TIME) & 1n).toBe(0n);
    expect((BigInt(`0x${caps}`) >> CAP_SYS_MODULE) & 1n).toBe(0n);
    // Setting the clock to (about) now: harmless should it ever succeed, which it must not.
    const before = Date.now();
    const r = await c.exec(['date', '-u', '-s', `@${Math.floor(before / 1000) + 3600}`]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/Operation not permitted/);
    expect(Math.abs(Date.now() - before)).toBeLessThan(60_000);
  });

  it('has its own network namespace with loopback only', async () => {
    const dev = (await c.exec(['cat', '/proc/net/dev'])).stdout;
    const ifaces = dev.split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter((s) => s !== '');
    expect(ifaces).toEqual(['lo']);
  });

  it('loads unit files given at boot and installed later (daemon-reload); a failing unit is listed as failed', async () => {
    expect((await c.systemctl('start', 'hello.service')).exitCode).toBe(0);
    expect(readFileSync(join(shared, 'from-unit'), 'utf8')).toBe('hi\n'); // the bind is writable
    expect((await c.exec(['cat', '/srv/shared/from-host'])).stdout).toBe('hello\n');
    await c.installUnits({ 'broken.service': '[Service]\nType=oneshot\nExecStart=/bin/false\n' });
    expect((await c.systemctl('start', 'broken.service')).exitCode).not.toBe(0);
    const failed = await c.systemctl('list-units', '--failed', '--plain', '--no-legend');
    expect(failed.stdout).toMatch(/^broken\.service\s+loaded\s+failed\s+failed/m);
    await c.systemctl('reset-failed', 'broken.service');
  });

  it('host programs reach it through the systemctl/journalctl wrappers on their PATH', async () => {
    const bin = c.wrappers();
    const env = { PATH: `${bin}:${process.env.PATH}` };
    expect(execFileSync('systemctl', ['is-active', 'hello.service'], { env, encoding: 'utf8' })).toBe('active\n');
    expect(execFileSync('journalctl', ['--no-pager', '-o', 'cat', '-u', 'hello.service'], { env, encoding: 'utf8' })).toMatch(/hello\.service|Finished|Starting/);
    // The wrapper's command is bounded too.
    const status = execFileSync(join(bin, 'systemctl'), ['--version'], { env, encoding: 'utf8' });
    expect(status).toMatch(/^systemd 2[0-9]{2}/);
  });

  it('a reboot keeps what was written to disk, not /run, and the boot id changes', async () => {
    const bootId = (await c.exec(['cat', '/proc/sys/kernel/random/boot_id'])).stdout;
    const pid1 = c.leader;
    c.writeFile('/var/lib/kept', 'disk\n');
    c.writeFile('/run/gone', 'tmpfs\n');
    await c.installUnits({ 'persist.service': '[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n' });
    expect((await c.systemctl('enable', 'persist.service')).exitCode).toBe(0);
    await c.reboot();
    expect(c.leader).not.toBe(pid1);
    expect(c.bootState).toBe('running');
    expect((await c.exec(['cat', '/var/lib/kept'])).stdout).toBe('disk\n');
    expect((await c.exec(['test', '-e', '/run/gone'])).exitCode).not.toBe(0);
    expect((await c.systemctl('is-active', 'persist.service')).stdout.trim()).toBe('active');
    // nspawn gives every boot its own boot id, as a real reboot would.
    expect((await c.exec(['cat', '/proc/sys/kernel/random/boot_id'])).stdout).not.toBe(bootId);
    // The wrappers follow the container to its new PID 1.
    const bin = c.wrappers(['systemctl']);
    expect(execFileSync(join(bin, 'systemctl'), ['is-active', 'persist.service'], { encoding: 'utf8' })).toBe('active\n');
  });

  it('boot-complete.target after a reboot: reached when a unit ordered before it succeeds, not when it fails', async () => {
    // What a verify-boot unit looks like: RequiredBy + Before boot-complete.target, which
    // something must pull in (systemd-boot's bless-boot generator does on a real host).
    await c.installUnits({
      'verify.service': '[Unit]\nBefore=boot-complete.target\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/test -e /var/lib/healthy\n[Install]\nRequiredBy=boot-complete.target\n',
    });
    expect((await c.systemctl('enable', 'verify.service')).exitCode).toBe(0);
    expect((await c.systemctl('add-wants', 'multi-user.target', 'boot-complete.target')).exitCode).toBe(0);
    c.writeFile('/var/lib/healthy', '');
    await c.reboot();
    expect((await c.systemctl('is-active', 'boot-complete.target')).stdout.trim()).toBe('active');
    await c.exec(['rm', '/var/lib/healthy']);
    await c.reboot({ allowDegraded: true });
    expect(c.bootState).toBe('degraded');
    expect((await c.systemctl('is-failed', 'verify.service')).stdout.trim()).toBe('failed');
    expect((await c.systemctl('is-active', 'boot-complete.target')).stdout.trim()).toBe('inactive');
    await c.systemctl('disable', 'verify.service');
    await c.exec(['rm', '/etc/systemd/system/multi-user.target.wants/boot-complete.target']);
    await c.reboot();
  });

  it('a stop leaves nothing behind: processes, cgroups, mounts, run dir', async () => {
    const other = await bootSystemd({ dbus: 'daemon' });
    const leader = other.leader;
    const runDir = other.runDir;
    const bin = other.wrappers();
    const cgroups = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup'].map((r) => join(r, `nixos-desync-test-${other.name}`));
    expect(cgroups.some((d) => existsSync(d))).toBe(true);
    await other.stop();
    expect(existsSync(`/proc/${leader}`)).toBe(false);
    expect(cgroups.filter((d) => existsSync(d))).toEqual([]);
    expect(existsSync(runDir)).toBe(false);
    expect(existsSync(bin)).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(runDir);
    await other.stop(); // idempotent
  });

  it('what a killed runner left (run dir with a dead launcher, its cgroups) is swept; a fresh run dir is not', () => {
    const stale = mkdtempSync(join(tmpdir(), 'nixos-desync-systemd-stale-'));
    const fresh = mkdtempSync(join(tmpdir(), 'nixos-desync-systemd-fresh-'));
    writeFileSync(join(stale, 'name'), 'nd-stale-test\n');
    writeFileSync(join(stale, 'launcher.pid'), '2147483646\n'); // above pid_max: not alive
    const cgroups = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup'].filter((r) => existsSync(join(r, 'cgroup.procs')))
      .map((r) => join(r, 'nixos-desync-test-nd-stale-test'));
    for (const cg of cgroups) mkdirSync(join(cg, 'launcher'), { recursive: true });
    const old = new Date(Date.now() - 10 * 60_000);
    utimesSync(stale, old, old);
    sweepStale();
    expect(existsSync(stale)).toBe(false);
    expect(cgroups.filter((cg) => existsSync(cg))).toEqual([]);
    expect(existsSync(fresh)).toBe(true);
    expect(existsSync(c.runDir)).toBe(true); // the live container's own dir (young, and its launcher runs)
    rmSync(fresh, { recursive: true });
  });
});
