import { describe, it, expect } from 'vitest';
import { chmod, mkdtemp, mkdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { createNixosSystem } from '../../src/system/nixos.js';
import { runCommand, type RunOptions, type RunResult } from '../../src/util/exec.js';

function recorder(exitCode = 0) {
  const calls: Array<{ argv: string[]; env: NodeJS.ProcessEnv }> = [];
  const run = async (argv: readonly string[], o: RunOptions): Promise<RunResult> => {
    calls.push({ argv: [...argv], env: o.env ?? {} });
    return { argv: [...argv], exitCode, signal: null, stdout: '', stderr: '', timedOut: false, durationMs: 1 };
  };
  return { calls, run };
}

describe('the NixOS system side: which commands an activation runs', () => {
  const top = '/nix/store/0123abcd-nixos-system-host';
  const prev = '/nix/store/4567efgh-nixos-system-host';

  it('"switch" directly: switch-to-configuration test, then nix-env --set + switch-to-configuration boot; rollback test-activates the previous one', async () => {
    const runDir = await mkdtemp(join(tmpdir(), 'nd-sys-'));
    const config = parseConfig({ runDir, profilesDir: '/p' });
    const { calls, run } = recorder();
    const sys = createNixosSystem({ config, run, env: {} });
    expect(sys.gated).toBe(true);
    await sys.activate(top, { timeoutMs: 1000 });
    await sys.finalize(top, { timeoutMs: 1000 });
    // The recorder switches nothing: the rollback ran, but current-system is not the target, so it is not confirmed.
    await expect(sys.rollback(prev, top, { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'E_ROLLBACK', message: expect.stringMatching(/the rollback is not confirmed/) });
    expect(calls.map((c) => c.argv)).toEqual([
      [`${top}/bin/switch-to-configuration`, 'test'],
      ['nix-env', '-p', '/p/system', '--set', top],
      [`${top}/bin/switch-to-configuration`, 'boot'],
      [`${prev}/bin/switch-to-configuration`, 'test'],
    ]);
    expect(calls[3]!.env.NIXOS_DESYNC_ROLLBACK).toBe('1');
  });

  it('with the module\'s activation unit: the same steps as `systemctl start nixos-desync-activate@<action>:<escaped toplevel>.service`', async () => {
    const runDir = await mkdtemp(join(tmpdir(), 'nd-sys-'));
    await symlink(top, join(runDir, 'current-system')); // dangling: realpath fails → treated as unknown
    const config = parseConfig({ runDir });
    const { calls, run } = recorder();
    const sys = createNixosSystem({ config, run, env: { NIXOS_DESYNC_ACTIVATION_UNIT: 'nixos-desync-activate' } });
    await sys.activate(top, { timeoutMs: 1000 });
    await sys.finalize(top, { timeoutMs: 1000 });
    await expect(sys.rollback(prev, top, { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'E_ROLLBACK' });
    expect(calls.map((c) => c.argv)).toEqual([
      ['systemctl', 'start', 'nixos-desync-activate@test:nix-store-0123abcd\\x2dnixos\\x2dsystem\\x2dhost.service'],
      ['systemctl', 'start', 'nixos-desync-activate@boot:nix-store-0123abcd\\x2dnixos\\x2dsystem\\x2dhost.service'],
      // The rollback first asks whether the failed system's activation is still at work (below).
      ['systemctl', 'show', '--property=Job', '--property=ActiveState', '--', 'nixos-desync-activate@test:nix-store-0123abcd\\x2dnixos\\x2dsystem\\x2dhost.service'],
      ['systemctl', 'start', 'nixos-desync-activate@test:nix-store-4567efgh\\x2dnixos\\x2dsystem\\x2dhost.service'],
    ]);
  });

  it('without the unit, a rollback waits for the interrupted activation a killed run left running (its process group never journaled) before activating the previous system', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nd-sys-'));
    const runDir = join(dir, 'run');
    await mkdir(runDir);
    // Two toplevels whose switch-to-configuration points current-system at themselves; the failed one takes 0.6 s.
    const toplevel = async (name: string, delay: number): Promise<string> => {
      const t = join(dir, name);
      await mkdir(join(t, 'bin'), { recursive: true });
      await writeFile(join(t, 'bin', 'switch-to-configuration'), `#!/bin/sh\nsleep ${delay}\nln -sfn ${t} ${runDir}/current-system.tmp && mv -T ${runDir}/current-system.tmp ${runDir}/current-system\n`);
      await chmod(join(t, 'bin', 'switch-to-configuration'), 0o755);
      return t;
    };
    const [failed, previous] = [await toplevel('failed', 0.6), await toplevel('previous', 0)];
    await symlink(previous, join(runDir, 'current-system'));
    const orphan = spawn(join(failed, 'bin', 'switch-to-configuration'), ['test'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 100)); // it runs; the run that started it is gone
    const sys = createNixosSystem({ config: parseConfig({ runDir }), run: runCommand, env: {} });
    expect(await sys.rollback(previous, failed, { timeoutMs: 10_000 })).toMatch(/activated again/);
    await new Promise((r) => orphan.exitCode !== null ? r(null) : orphan.once('exit', r));
    // Activated after the orphan finished: the previous system runs, not the failed one.
    expect(await realpath(join(runDir, 'current-system'))).toBe(previous);
    await rm(dir, { recursive: true, force: true });
  });

  it('with the activation unit, a rollback waits until the interrupted activation\'s unit has no job left (a killed loop\'s activation goes on)', async () => {
    const config = parseConfig({ runDir: await mkdtemp(join(tmpdir(), 'nd-sys-')) });
    const answers = ['Job=41\nActiveState=inactive\n', 'Job=41\nActiveState=activating\n', 'Job=\nActiveState=inactive\n'];
    const calls: string[] = [];
    const run = async (argv: readonly string[]): Promise<RunResult> => {
      calls.push(`${argv[1]} ${argv.at(-1)!.split(':')[0]}`);
      const stdout = argv[1] === 'show' ? answers.shift()! : '';
      return { argv: [...argv], exitCode: 0, signal: null, stdout, stderr: '', timedOut: false, durationMs: 1 };
    };
    const sys = createNixosSystem({ config, run, env: { NIXOS_DESYNC_ACTIVATION_UNIT: 'nixos-desync-activate' } });
    await expect(sys.rollback(prev, top, { timeoutMs: 10_000 })).rejects.toMatchObject({ code: 'E_ROLLBACK' });
    expect(calls).toEqual(['show nixos-desync-activate@test', 'show nixos-desync-activate@test', 'show nixos-desync-activate@test', 'start nixos-desync-activate@test']);
    // Still at work when the rollback's own timeout runs out: the previous system is not started beside it.
    calls.length = 0;
    const busy = async (argv: readonly string[]): Promise<RunResult> => {
      calls.push(argv[1]!);
      return { argv: [...argv], exitCode: 0, signal: null, stdout: 'Job=41\nActiveState=activating\n', stderr: '', timedOut: false, durationMs: 1 };
    };
    await expect(createNixosSystem({ config, run: busy, env: { NIXOS_DESYNC_ACTIVATION_UNIT: 'nixos-desync-activate' } }).rollback(prev, top, { timeoutMs: 600 }))
      .rejects.toMatchObject({ code: 'E_ROLLBACK', message: expect.stringMatching(/interrupted activation of .* is still running; the previous system was not activated beside it/) });
    expect(calls).not.toContain('start');
  });

  it('a rollback is confirmed only when current-system is the target again; it re-activates also when the link already names it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'nd-sys-'));
    const [runDir, good, bad] = [join(root, 'run'), join(root, 'good-system'), join(root, 'bad-system')];
    for (const d of [runDir, good, bad]) await mkdir(d);
    const calls: string[][] = [];
    // A switch-to-configuration that points current-system at its toplevel, or fails.
    const switching = (exitCode: number) => async (argv: readonly string[], o: RunOptions): Promise<RunResult> => {
      calls.push([...argv]);
      if (exitCode === 0) {
        await rm(join(runDir, 'current-system'), { force: true });
        await symlink(argv[0]!.replace(/\/bin\/switch-to-configuration$/, ''), join(runDir, 'current-system'));
      }
      return { argv: [...argv], exitCode, signal: null, stdout: '', stderr: exitCode ? 'activation script failed' : '', timedOut: false, durationMs: 1 };
    };
    const config = parseConfig({ runDir });
    await symlink(bad, join(runDir, 'current-system'));
    expect(await createNixosSystem({ config, run: switching(0), env: {} }).rollback(good, bad, { timeoutMs: 1000 })).toBe(`${good} activated again`);
    // Already the running system: activated again all the same (a killed activation may have stopped units).
    expect(await createNixosSystem({ config, run: switching(0), env: {} }).rollback(good, bad, { timeoutMs: 1000 })).toBe(`${good} activated again`);
    expect(calls).toHaveLength(2);
    // The previous switch-to-configuration fails: E_ROLLBACK with its output.
    await rm(join(runDir, 'current-system'));
    await symlink(bad, join(runDir, 'current-system'));
    await expect(createNixosSystem({ config, run: switching(1), env: {} }).rollback(good, bad, { timeoutMs: 1000 }))
      .rejects.toMatchObject({ code: 'E_ROLLBACK', message: expect.stringMatching(/activation script failed/) });
    // No previous system (first run): nothing to activate again.
    await expect(createNixosSystem({ config, run: switching(0), env: {} }).rollback(null, bad, { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'E_ROLLBACK' });
    expect(calls).toHaveLength(3);
  });

  it('an argv system.activate gets NIXOS_DESYNC_TOPLEVEL; "boot" activates nothing now and has no health gate', async () => {
    const { calls, run } = recorder();
    const argvSys = createNixosSystem({ config: parseConfig({ system: { activate: ['/usr/local/bin/activate', '--now'] } }), run, env: {} });
    expect(argvSys.gated).toBe(true);
    await argvSys.activate(top, { timeoutMs: 1000 });
    expect(calls[0]!.argv).toEqual(['/usr/local/bin/activate', '--now']);
    expect(calls[0]!.env.NIXOS_DESYNC_TOPLEVEL).toBe(top);
    const bootSys = createNixosSystem({ config: parseConfig({ system: { activate: 'boot' } }), run, env: {} });
    expect(bootSys.gated).toBe(false);
    expect(await bootSys.activate(top, { timeoutMs: 1000 })).toBeNull();
    expect(calls).toHaveLength(1);
  });

  it('a failing activation is E_ACTIVATE with its output; exit 4 (units failed) is left to the health gate', async () => {
    const sys4 = createNixosSystem({ config: parseConfig({}), run: recorder(4).run, env: {} });
    expect(await sys4.activate(top, { timeoutMs: 1000 })).toMatch(/exit 4\): the health gate decides/);
    const sys1 = createNixosSystem({ config: parseConfig({}), run: recorder(1).run, env: {} });
    await expect(sys1.activate(top, { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'E_ACTIVATE' });
  });
});

describe('the health gate runs each desync\'s healthChecks, attributed to that desync', () => {
  const top = '/nix/store/0123abcd-nixos-system-host';
  const prev = '/nix/store/4567efgh-nixos-system-host';

  it('host checks first, then desyncs\' checks with NIXOS_DESYNC_NAME; a failing one names its desync', async () => {
    const calls: Array<{ argv: string[]; env: NodeJS.ProcessEnv }> = [];
    const run = async (argv: readonly string[], o: RunOptions): Promise<RunResult> => {
      calls.push({ argv: [...argv], env: o.env ?? {} });
      const exitCode = argv[0] === '/bin/synapse-smoke' ? 1 : 0;
      return { argv: [...argv], exitCode, signal: null, stdout: '', stderr: exitCode ? 'HTTP 502' : '', timedOut: false, durationMs: 1 };
    };
    const config = parseConfig({
      health: { settle: '0s', failedUnits: false, checks: [['/bin/host-check']] },
      desyncs: { synapse: { healthChecks: [['/bin/synapse-smoke', '--quick']] }, hm: { healthChecks: [['/bin/hm-smoke']] } },
    });
    const report = await createNixosSystem({ config, run, env: {} }).health(top, prev, [], {});
    expect(calls.map((c) => c.argv[0])).toEqual(['/bin/host-check', '/bin/synapse-smoke', '/bin/hm-smoke']);
    expect(calls[0]!.env.NIXOS_DESYNC_NAME).toBeUndefined();
    expect(calls[1]!.env).toMatchObject({ NIXOS_DESYNC_NAME: 'synapse', NIXOS_DESYNC_TOPLEVEL: top, NIXOS_DESYNC_PREVIOUS_TOPLEVEL: prev });
    expect(report.ok).toBe(false);
    expect(report.failures).toEqual([expect.objectContaining({ kind: 'check', name: '/bin/synapse-smoke --quick', desync: 'synapse', tail: expect.stringContaining('HTTP 502') })]);
    expect(report.checked.checks).toBe(3);
  });
});
