// `./scripts/demo.sh --flake` (dist/src/demo/flake-main.js) run for real (real Nix flakes, git):
// it activates as the loop does by default — switch-to-configuration test, the health gate, then
// the profile and boot entry — and its unhealthy revision is rolled back, flake.lock untouched.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NIX_ENV } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';

const DEMO = fileURLToPath(new URL('../../dist/src/demo/flake-main.js', import.meta.url));

describe.skipIf(!requireTools('nix', 'git'))('the flake demo', () => {
  let dir: string;
  let run: { status: number | null; stdout: string; stderr: string };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nixos-desync-flake-demo-test-'));
    run = spawnSync(process.execPath, [DEMO, dir], { env: { ...process.env, ...NIX_ENV }, encoding: 'utf8', timeout: 240_000 });
  }, 250_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('uses the default activation and health gate, not an argv `nixos-rebuild switch`', () => {
    expect(run.status, run.stderr.slice(-3000)).toBe(0);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { system: Record<string, unknown>; health: Record<string, unknown> };
    expect(config.system.activate).toBeUndefined();
    expect(config.health.failedUnits).toBeUndefined();
    expect(run.stdout).not.toMatch(/fake-nixos-rebuild\.js switch/);
    expect(run.stdout).toMatch(/^activate .*\/bin\/switch-to-configuration test ok/m);
    expect(run.stdout).toMatch(/^health +healthy .*\(failed units/m);
  });

  it('each healthy run activates (test), then makes the system the boot default (boot); the unhealthy one is rolled back', () => {
    const acts = readFileSync(join(dir, 'run', 'activations'), 'utf8').trim().split('\n').map((l) => l.split(' '));
    // Runs 1–4 healthy: test + boot each; run 5: test of the new system, test of the previous one again.
    expect(acts.map(([a]) => a)).toEqual(['test', 'boot', 'test', 'boot', 'test', 'boot', 'test', 'boot', 'test', 'test']);
    const [, healthy] = acts[7]!;
    expect(acts[9]![1]).toBe(healthy);
    expect(acts[8]![1]).not.toBe(healthy);
    expect(run.stdout).toMatch(/=== run 5:[\s\S]*health +FAILED — unit matrix-synapse\.service[\s\S]*\(exit code 1\)/);
    // flake.lock keeps run 4's revisions: the lock commit of run 4 is the newest.
    const log = spawnSync('git', ['-C', join(dir, 'etc-nixos'), 'log', '--format=%s'], { encoding: 'utf8' }).stdout.trim().split('\n');
    expect(log).toHaveLength(4);
  });

  it('prints the PATH line for running the CLI on it', () => {
    expect(run.stdout).toContain(`  export PATH=${join(dir, 'bin')}:$PATH\n`);
  });
});
