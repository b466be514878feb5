// A small reboot world for unit tests: toplevel-like directories with kernel/initrd links in a
// temp "store", <runDir>/booted-system and current-system, a profile, and a logged stand-in for
// the reboot command (a Runner that records its argv, never reboots anything).
import { mkdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { RunResult, Runner } from '../../src/util/exec.js';

export interface RebootWorld {
  dir: string;
  config: Config;
  stateDir: string;
  runDir: string;
  profilesDir: string;
  /** A toplevel whose kernel/initrd/kernel-modules are `<store>/<kernel>`. */
  toplevel(name: string, kernel: string): Promise<string>;
  /** Points <runDir>/booted-system (and current-system, as at boot) at `top`. */
  boot(top: string, running?: string): Promise<void>;
  /** Makes `top` the profile's newest generation (the boot default). */
  setDefault(top: string): Promise<void>;
  bootDefault(): Promise<string>;
  /** The reboot command stand-in and what it was asked to run. */
  run: Runner;
  calls: string[][];
  /** Make the stand-in fail (exit 1) from now on. */
  failCommand(): void;
}

export async function rebootWorld(dir: string, reboot: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<RebootWorld> {
  const [stateDir, runDir, profilesDir, store] = ['state', 'run', 'profiles', 'store'].map((d) => join(dir, d)) as [string, string, string, string];
  await Promise.all([runDir, profilesDir, store].map((d) => mkdir(d, { recursive: true })));
  const config = parseConfig({
    stateDir, runDir, profilesDir,
    health: { settle: '0s', failedUnits: false },
    reboot: { enable: true, command: ['stand-in-reboot', '--now'], sentinel: join(runDir, 'reboot-required'), ...reboot },
    ...extra,
  });
  const calls: string[][] = [];
  let fails = false;
  let gen = 0;
  const relink = async (target: string, link: string): Promise<void> => {
    await rm(link, { force: true });
    await symlink(target, link);
  };
  const w: RebootWorld = {
    dir, config, stateDir, runDir, profilesDir, calls,
    async toplevel(name, kernel) {
      const top = join(store, name);
      await mkdir(join(store, kernel), { recursive: true });
      await mkdir(top, { recursive: true });
      for (const part of ['kernel', 'initrd', 'kernel-modules']) await relink(join(store, kernel), join(top, part));
      await writeFile(join(top, 'kernel-params'), 'loglevel=4');
      return top;
    },
    async boot(top, running = top) {
      await relink(top, join(runDir, 'booted-system'));
      await relink(running, join(runDir, 'current-system'));
    },
    async setDefault(top) {
      gen += 1;
      await relink(top, join(profilesDir, `system-${gen}-link`));
      await relink(`system-${gen}-link`, join(profilesDir, 'system'));
    },
    async bootDefault() {
      return readlink(join(profilesDir, await readlink(join(profilesDir, 'system'))));
    },
    run: async (argv) => {
      calls.push([...argv]);
      const r: RunResult = { argv: [...argv], exitCode: fails ? 1 : 0, signal: null, stdout: '', stderr: fails ? 'Failed to reboot: access denied' : '', timedOut: false, durationMs: 1 };
      return r;
    },
    failCommand() {
      fails = true;
    },
  };
  return w;
}
