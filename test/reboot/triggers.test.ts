import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  compareToplevels, DEFAULT_REBOOT_TRIGGERS, describeReason, inhibitorChanges, readRebootSituation, readSwitchInhibitors, REBOOT_TRIGGERS, switchInhibitorsDiffer,
} from '../../src/reboot/triggers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixos-desync-triggers-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Top { kernel?: string; initrd?: string; modules?: string; firmware?: string; params?: string; inhibitors?: string }

/** A toplevel-like directory: kernel/initrd/kernel-modules/firmware links into a fake store, kernel-params, switch-inhibitors. */
async function toplevel(name: string, t: Top): Promise<string> {
  const top = join(dir, 'store', name);
  await mkdir(top, { recursive: true });
  const link = async (part: string, target: string | undefined): Promise<void> => {
    if (target === undefined) return;
    const p = join(dir, 'store', target);
    await mkdir(p, { recursive: true });
    await symlink(p, join(top, part));
  };
  await link('kernel', t.kernel);
  await link('initrd', t.initrd);
  await link('kernel-modules', t.modules);
  await link('firmware', t.firmware);
  if (t.params !== undefined) await writeFile(join(top, 'kernel-params'), t.params);
  if (t.inhibitors !== undefined) await writeFile(join(top, 'switch-inhibitors'), t.inhibitors);
  return top;
}

const base: Top = { kernel: 'linux-6.6', initrd: 'initrd-a', modules: 'modules-a', firmware: 'fw-a', params: 'loglevel=4 quiet' };

describe('compareToplevels', () => {
  it('the same parts: no trigger (other store paths of the system do not matter)', async () => {
    const a = await toplevel('a', base);
    const b = await toplevel('b', base);
    expect(await compareToplevels(a, b, b, REBOOT_TRIGGERS)).toEqual([]);
  });

  it('each part that differs is one reason, in trigger order, only for the configured triggers', async () => {
    const a = await toplevel('a', base);
    const b = await toplevel('b', { ...base, kernel: 'linux-6.12', modules: 'modules-b', params: 'loglevel=4' });
    const all = await compareToplevels(a, b, a, DEFAULT_REBOOT_TRIGGERS);
    expect(all.map((r) => r.trigger)).toEqual(['kernel', 'kernel-modules', 'kernel-params']);
    expect(all[0]!.booted).toBe(join(dir, 'store', 'linux-6.6'));
    expect(all[0]!.next).toBe(join(dir, 'store', 'linux-6.12'));
    expect(all[2]).toEqual({ trigger: 'kernel-params', booted: 'loglevel=4 quiet', next: 'loglevel=4' });
    expect((await compareToplevels(a, b, a, ['initrd', 'firmware'])).map((r) => r.trigger)).toEqual([]);
    expect((await compareToplevels(a, b, a, ['kernel-params'])).map((r) => r.trigger)).toEqual(['kernel-params']);
    expect(describeReason(all[2]!)).toBe('kernel-params: loglevel=4 quiet → loglevel=4');
  });

  it('a part only one side has is a difference (firmware added)', async () => {
    const a = await toplevel('a', { ...base, firmware: undefined });
    const b = await toplevel('b', base);
    expect((await compareToplevels(a, b, a, DEFAULT_REBOOT_TRIGGERS)).map((r) => r.trigger)).toEqual(['firmware']);
  });
});

describe('switch inhibitors', () => {
  it('reads the JSON object of current nixpkgs and the line list of its first version', async () => {
    const j = await toplevel('j', { inhibitors: '{"systemd":"/nix/store/aaa-systemd-258","dbus-implementation":"broker"}' });
    const l = await toplevel('l', { inhibitors: '/nix/store/aaa-systemd-258\n/nix/store/bbb-dbus-broker-37' });
    expect(await readSwitchInhibitors(j)).toEqual({ format: 'json', entries: { systemd: '/nix/store/aaa-systemd-258', 'dbus-implementation': 'broker' } });
    expect((await readSwitchInhibitors(l))?.format).toBe('lines');
    expect(await readSwitchInhibitors(await toplevel('none', {}))).toBeNull();
  });

  it('JSON: only names present on both sides with another value block a live switch', () => {
    const a = { format: 'json' as const, entries: { systemd: 's1', dbus: 'dbus', gone: 'x' } };
    expect(inhibitorChanges(a, { format: 'json', entries: { systemd: 's1', dbus: 'dbus', added: 'y' } })).toEqual([]);
    expect(inhibitorChanges(a, { format: 'json', entries: { systemd: 's2', dbus: 'broker' } })).toEqual(['dbus: dbus → broker', 'systemd: s1 → s2']);
    // A system that declares none (no file) on either side: nothing to compare.
    expect(inhibitorChanges(null, a)).toEqual([]);
    expect(inhibitorChanges(a, null)).toEqual([]);
  });

  it('a corrupt file blocks (nixpkgs fails loudly on it too)', async () => {
    const a = await toplevel('a', { inhibitors: '{"systemd":"s1"}' });
    const b = await toplevel('b', { inhibitors: '{"systemd": ' });
    expect((await switchInhibitorsDiffer(a, b))[0]).toMatch(/unreadable/);
  });

  it('line lists compare as sets', async () => {
    const a = await toplevel('a', { inhibitors: '/nix/store/s1\n/nix/store/d1\n' });
    const b = await toplevel('b', { inhibitors: '/nix/store/s2\n/nix/store/d1' });
    expect(await switchInhibitorsDiffer(a, b)).toEqual(['+/nix/store/s2', '-/nix/store/s1']);
    expect(await switchInhibitorsDiffer(a, a)).toEqual([]);
  });

  it('as a trigger: only while the boot default is not what runs', async () => {
    const a = await toplevel('a', { ...base, inhibitors: '{"systemd":"s1"}' });
    const b = await toplevel('b', { ...base, inhibitors: '{"systemd":"s2"}' });
    expect(await compareToplevels(a, b, a, ['switch-inhibitors'])).toEqual([{ trigger: 'switch-inhibitors', booted: null, next: 'systemd: s1 → s2' }]);
    expect(await compareToplevels(a, b, b, ['switch-inhibitors'])).toEqual([]);
  });
});

describe('readRebootSituation', () => {
  it('compares <runDir>/booted-system with <profilesDir>/system, else with current-system', async () => {
    const a = await toplevel('a', base);
    const b = await toplevel('b', { ...base, initrd: 'initrd-b' });
    const [run, profiles] = [join(dir, 'run'), join(dir, 'profiles')];
    await mkdir(run);
    await mkdir(profiles);
    await symlink(a, join(run, 'booted-system'));
    await symlink(a, join(run, 'current-system'));
    expect((await readRebootSituation(profiles, run, DEFAULT_REBOOT_TRIGGERS)).reasons).toEqual([]);
    await symlink(b, join(profiles, 'system-2-link'));
    await symlink('system-2-link', join(profiles, 'system'));
    const s = await readRebootSituation(profiles, run, DEFAULT_REBOOT_TRIGGERS);
    expect(s).toMatchObject({ booted: a, running: a, next: b });
    expect(s.reasons.map((r) => r.trigger)).toEqual(['initrd']);
  });

  it('nothing booted (not NixOS): no reasons', async () => {
    expect(await readRebootSituation(join(dir, 'p'), join(dir, 'r'), DEFAULT_REBOOT_TRIGGERS)).toEqual({ booted: null, running: null, next: null, reasons: [] });
  });
});
