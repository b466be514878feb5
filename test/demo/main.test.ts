// `./scripts/demo.sh` (dist/src/demo/main.js) run for real, with real Nix: the running system's
// nixpkgs is dated today (no NixosDesyncNixpkgsOutOfDate on a fresh demo host), REBOOT REQUIRED
// is explained, and the printed "run it yourself" lines make `upgrade` work from a plain shell.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseNixosVersion } from '../../src/system/running.js';
import { REBOOT_NOTE } from '../../src/demo/explain.js';
import { CLI, NIX_ENV } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DEMO = join(ROOT, 'dist/src/demo/main.js');

/** NixosDesyncNixpkgsOutOfDate's threshold in seconds, from the shipped rule. */
function outOfDateThreshold(): number {
  const doc = parseYaml(readFileSync(join(ROOT, 'alerts/nixos-desync.rules.yml'), 'utf8')) as { groups: { rules: { alert?: string; expr: string }[] }[] };
  const expr = doc.groups.flatMap((g) => g.rules).find((r) => r.alert === 'NixosDesyncNixpkgsOutOfDate')!.expr;
  const m = /> (\d+) \* 86400/.exec(expr);
  expect(m, expr).not.toBeNull();
  return Number(m![1]) * 86400;
}

describe.skipIf(!requireTools('nix-build', 'nix-instantiate'))('the channel demo', () => {
  let dir: string;
  let run: { status: number | null; stdout: string; stderr: string };

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nixos-desync-demo-test-'));
    run = spawnSync(process.execPath, [DEMO, dir], { env: { ...process.env, ...NIX_ENV }, encoding: 'utf8', timeout: 240_000 });
  }, 250_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs its story to the end', () => {
    expect(run.status, run.stderr.slice(-3000)).toBe(0);
    expect(run.stdout).toMatch(/=== run 1:/);
    expect(run.stdout).toContain('The demo state is in');
  });

  it("dates the running system's nixpkgs today: NixosDesyncNixpkgsOutOfDate stays quiet on a fresh demo host", () => {
    const v = parseNixosVersion(readFileSync(join(dir, 'run', 'current-system', 'nixos-version'), 'utf8'));
    expect(v?.date).toBeInstanceOf(Date);
    const age = (Date.now() - v!.date!.getTime()) / 1000;
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(2 * 86400);
    expect(age).toBeLessThan(outOfDateThreshold());
  });

  it('explains REBOOT REQUIRED once, right after the first status that shows it', () => {
    const first = run.stdout.indexOf('REBOOT REQUIRED');
    expect(first).toBeGreaterThan(0);
    const note = run.stdout.indexOf(REBOOT_NOTE);
    expect(note).toBeGreaterThan(first);
    expect(run.stdout.slice(first, note)).not.toContain('=== run');
    expect(run.stdout.split(REBOOT_NOTE)).toHaveLength(2);
  });

  it('prints the PATH line that makes `upgrade` work on the demo dir outside the script', () => {
    const path = /^ {2}export PATH=(\S+):\$PATH$/m.exec(run.stdout)?.[1];
    expect(path).toBe(join(dir, 'bin'));
    expect(run.stdout).toContain(`nixos-desync upgrade --config ${join(dir, 'config.json')}`);
    // A shell that only did what the demo printed: its PATH line in front of a plain PATH.
    const env = { ...process.env, ...NIX_ENV, PATH: `${path}:${process.env.PATH ?? '/usr/bin:/bin'}` };
    const r = spawnSync(process.execPath, [CLI, 'upgrade', '--config', join(dir, 'config.json'), '--json'], { env, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr.slice(-3000)).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ exitCode: 0, result: 'success' });
  }, 130_000);
});
