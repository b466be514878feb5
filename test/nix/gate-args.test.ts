// #11.14: the gate imports each desync's nixpkgs with the same arguments as the system does
// (nix/module/desyncs.nix: explicit system, config, `overlays = [ ]`), so an ambient overlay
// (<nixpkgs-overlays>, ~/.config/nixpkgs/overlays.nix) cannot change the gate's verdict.
// Real Nix on the fake nixpkgs, which honours ambient overlays as real nixpkgs does.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFakeNixpkgs } from '../../src/demo/fake-nixpkgs.js';
import { createCliNix } from '../../src/nix/cli-adapter.js';
import { requireTools } from '../helpers/tools.js';
import { NIX_ENV } from '../helpers/cli.js';

const HAVE_NIX = requireTools('nix-instantiate', 'nix-store');
const OVERLAY = '[ (final: prev: { home-manager = throw "home-manager broken by an ambient overlay"; }) ]\n';

let root: string;
let nixpkgs: string;
let ambientEnv: NodeJS.ProcessEnv;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'desync-gate-args-'));
  nixpkgs = await writeFakeNixpkgs(join(root, 'nixpkgs'), { label: 'gate-args' });
  await writeFile(join(root, 'overlays.nix'), OVERLAY);
  await mkdir(join(root, 'home', '.config', 'nixpkgs'), { recursive: true });
  await writeFile(join(root, 'home', '.config', 'nixpkgs', 'overlays.nix'), OVERLAY);
  ambientEnv = { ...process.env, ...NIX_ENV, NIX_PATH: `nixpkgs-overlays=${join(root, 'overlays.nix')}`, HOME: join(root, 'home') };
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe.skipIf(!HAVE_NIX)('gate nixpkgs arguments (real Nix)', () => {
  it('the fixture takes ambient overlays when imported without arguments (so the next test can fail)', () => {
    for (const env of [ambientEnv, { ...ambientEnv, NIX_PATH: '' }]) {
      const r = spawnSync('nix-instantiate', ['--eval', '-E', `(import ${nixpkgs} { }).home-manager.name`], { env, encoding: 'utf8' });
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/broken by an ambient overlay/);
    }
  });

  it('an ambient overlay that breaks a package does not change the gate\'s verdict', async () => {
    const nix = createCliNix({ env: ambientEnv });
    const report = await nix.buildGates([{ desync: 'hm', nixpkgs, attrs: ['home-manager'], config: {} }], { timeoutMs: 120_000 });
    const hm = report.results.get('hm')!;
    expect(hm.ok, JSON.stringify(hm)).toBe(true);
    expect(hm.attrs[0]!.outputs[0]).toMatch(/-home-manager-gate-args$/);
  });

  it('imports nixpkgs for the given system (the running system\'s platform), not Nix\'s default', async () => {
    const nix = createCliNix({ env: { ...process.env, ...NIX_ENV } });
    const report = await nix.buildGates([{ desync: 'hm', nixpkgs, attrs: ['hello'], config: {}, system: 'riscv64-linux' }], { timeoutMs: 120_000 });
    const attr = report.results.get('hm')!.attrs[0]!;
    expect(attr.drvPath).toBeDefined();
    const sys = spawnSync('nix-store', ['--query', '--binding', 'system', attr.drvPath!], { env: { ...process.env, ...NIX_ENV }, encoding: 'utf8' });
    expect(sys.stdout.trim()).toBe('riscv64-linux');
  });
});
