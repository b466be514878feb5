// The CLI's reboot commands (`reboot`, `verify-boot`): flags, exit codes 0/1/64/75, and the
// reboot command run for real as argv (a stand-in that only touches a file).
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { main } from '../../src/cli/main.js';
import { acquireLock } from '../../src/state/lock.js';
import { createStateStore } from '../../src/state/store.js';
import { rebootWorld } from '../helpers/reboot-world.js';

async function cli(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), env: {} });
  return { code, stdout, stderr };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixos-desync-cli-reboot-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A host that needs a reboot (new kernel in the boot default); reboot.command touches `marker`. */
async function host(reboot: Record<string, unknown> = {}) {
  const marker = join(dir, 'rebooted');
  const w = await rebootWorld(join(dir, 'host'), { command: ['touch', marker], ...reboot });
  const a = await w.toplevel('a', 'linux-1');
  await w.boot(a);
  await w.setDefault(a);
  await w.setDefault(await w.toplevel('b', 'linux-2'));
  const cfg = join(dir, 'config.json');
  await writeFile(cfg, JSON.stringify({ stateDir: w.stateDir, runDir: w.runDir, profilesDir: w.profilesDir, health: { settle: '0s', failedUnits: false }, reboot: w.config.reboot }));
  const rebooted = () => stat(marker).then(() => true, () => false);
  return { w, cfg, rebooted };
}

describe('nixos-desync reboot / verify-boot (CLI)', () => {
  it.each([[['reboot', '--json']], [['reboot', '--retry']], [['verify-boot', '--dry-run']], [['verify-boot', 'now']]])('%j is a usage error (64)', async (args) => {
    expect((await cli(args)).code).toBe(64);
  });

  it('--help lists both commands', async () => {
    const help = (await cli(['--help'])).stdout;
    expect(help).toMatch(/nixos-desync verify-boot +--config FILE/);
    expect(help).toMatch(/nixos-desync reboot +--config FILE \[--dry-run\]/);
  });

  it('reboot --dry-run says it would reboot and runs nothing; reboot runs reboot.command (exit 0)', async () => {
    const { cfg, rebooted } = await host();
    const dry = await cli(['reboot', '--config', cfg, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/reboot required \(kernel: .*\); rebooting now \(dry run: not rebooting\)/);
    expect(await rebooted()).toBe(false);
    const r = await cli(['reboot', '--config', cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect(await rebooted()).toBe(true);
  });

  it('reboot while a run holds the lock: exit 75, no reboot', async () => {
    const { w, cfg, rebooted } = await host();
    const store = createStateStore(w.stateDir);
    await store.prepareDir();
    const lock = await acquireLock(store.paths.lock, 'upgrade');
    try {
      expect((await cli(['reboot', '--config', cfg])).code).toBe(75);
      expect(await rebooted()).toBe(false);
    } finally {
      await lock.release();
    }
  });

  it('reboot blocked by an unreachable Prometheus: exit 1, no reboot', async () => {
    const { cfg, rebooted } = await host({ blockOnAlerts: { prometheus: { url: 'http://127.0.0.1:9', timeout: '2s' } } });
    const r = await cli(['reboot', '--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/cannot be asked for alerts/);
    expect(await rebooted()).toBe(false);
  });

  it('verify-boot on a healthy boot: exit 0, verified', async () => {
    const { w, cfg } = await host();
    const b = await w.bootDefault();
    await w.boot(b);
    const r = await cli(['verify-boot', '--config', cfg]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/is healthy: verified/);
  });
});
