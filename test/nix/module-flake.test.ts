// nix/module.nix in flake mode (pure: desyncs from the host flake's inputs, no pin file read)
// and channel mode's warning for a desync whose pin file is missing at evaluation time.
// Real Nix and nixpkgs' real lib, as test/nix/module.test.ts.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTools } from '../helpers/tools.js';
import { CLI } from '../helpers/cli.js';
import { nixpkgsLibDir } from '../helpers/nixpkgs-lib.js';
import { writeFakeNixpkgs } from '../../src/demo/fake-nixpkgs.js';
import { localSystem } from '../../src/demo/fake-flake.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HERE = fileURLToPath(new URL('./', import.meta.url));
const ENV = { ...process.env, NIX_CONFIG: 'sandbox = false\nsubstituters =' };
const FLAKES = ['--extra-experimental-features', 'nix-command flakes'];

interface Inspect {
  failedAssertions: string[];
  warnings: string[];
  configFile: string;
  configText: string;
  units: Record<string, string>;
  desyncs: Record<string, { path: string; revision: string | null; desyncAge: number | null; helloName: string }>;
}

const ok = requireTools('nix-instantiate', 'nix');

describe.skipIf(!ok)('NixOS module: flake mode and missing pins (real Nix, nixpkgs lib)', () => {
  let tmp: string;
  let libDir: string;
  let systemNixpkgs: string;

  function evaluate(hostModule: string, testArgs: Record<string, unknown> = {}): { ok: true; value: Inspect } | { ok: false; stderr: string } {
    const r = spawnSync('nix-instantiate', [
      '--eval', '--strict', '--json', '--read-write-mode', join(HERE, 'eval.nix'), '-A', 'inspect',
      '--argstr', 'nixpkgsLib', libDir,
      '--argstr', 'packageDir', join(tmp, 'pkg'),
      '--argstr', 'nixpkgsPath', systemNixpkgs,
      '--arg', 'configModule', join(HERE, hostModule),
      '--argstr', 'testArgs', JSON.stringify(testArgs),
    ], { env: ENV, encoding: 'utf8' });
    return r.status === 0 ? { ok: true, value: JSON.parse(r.stdout) as Inspect } : { ok: false, stderr: r.stderr };
  }
  const mustEvaluate = (hostModule: string, testArgs: Record<string, unknown> = {}): Inspect => {
    const r = evaluate(hostModule, testArgs);
    if (!r.ok) throw new Error(r.stderr);
    return r.value;
  };

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'nixos-desync-modflake-'));
    libDir = nixpkgsLibDir();
    // The check-config build step runs as a build user: it must reach the stand-in package.
    chmodSync(tmp, 0o755);
    // Stands in for the package (checkConfig runs its check-config at build time).
    mkdirSync(join(tmp, 'pkg', 'bin'), { recursive: true });
    writeFileSync(join(tmp, 'pkg', 'bin', 'nixos-desync'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`);
    chmodSync(join(tmp, 'pkg', 'bin', 'nixos-desync'), 0o755);
    systemNixpkgs = await writeFakeNixpkgs(join(tmp, 'system-nixpkgs'), { label: 'channel' });
    await writeFakeNixpkgs(join(tmp, 'np-synapse'), { label: 'synapse-rev' });
    await writeFakeNixpkgs(join(tmp, 'np-hm'), { label: 'hm-rev' });
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('flake mode: desyncs come from the flake inputs, the generated config and units use --flake, the flake checkout is writable', () => {
    // Pin files that would say otherwise are not read in flake mode.
    const stateDir = join(tmp, 'state-with-pins');
    mkdirSync(join(stateDir, 'pins'), { recursive: true });
    writeFileSync(join(stateDir, 'pins', 'synapse.nix'), `{ desyncAge = 7; path = ${JSON.stringify(systemNixpkgs)}; revision = "from-pin"; }\n`);
    const ev = mustEvaluate('host-flake.nix', {
      stateDir,
      inputs: {
        'nixpkgs-synapse': { outPath: join(tmp, 'np-synapse'), rev: 'a'.repeat(40) },
        'nixpkgs-home-manager': { outPath: join(tmp, 'np-hm'), rev: 'b'.repeat(40) },
      },
    });
    expect(ev.failedAssertions).toEqual([]);
    expect(ev.warnings).toEqual([]);
    expect(ev.desyncs.synapse).toEqual({ path: join(tmp, 'np-synapse'), revision: 'a'.repeat(40), desyncAge: null, helloName: 'hello-synapse-rev' });
    expect(ev.desyncs.hm).toMatchObject({ path: join(tmp, 'np-hm'), revision: 'b'.repeat(40), helloName: 'hello-hm-rev' });

    const cfg = JSON.parse(ev.configText);
    expect(cfg.flake).toEqual({ path: '/srv/host-flake', host: 'web1', input: 'nixpkgs', commitLockFile: true });
    expect(cfg.nixpkgs).toBeUndefined();
    expect(cfg.channel).toBeUndefined();
    expect(cfg.desyncs.synapse.input).toBe('nixpkgs-synapse');
    expect(cfg.desyncs.hm.input).toBe('nixpkgs-home-manager');
    expect(cfg.system.build.slice(1)).toEqual(['build', '--flake', '/srv/host-flake#web1', '--no-update-lock-file']);
    // The activation is the built toplevel itself (no second evaluation, flake or channel).
    expect(cfg.system.activate).toBe('switch');
    const up = ev.units['nixos-desync-upgrade.service']!;
    expect(up).toMatch(/^ReadWritePaths=\/srv\/host-flake$/m);
    expect(up).not.toMatch(/nix-defexpr/);

    // The generated config passes check-config (the lock file is absent here: a warning).
    const r = spawnSync(process.execPath, [CLI, 'check-config', '--config', ev.configFile], { env: ENV, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\/srv\/host-flake\/flake\.lock cannot be read here/);
  });

  it('flake mode: a desync whose input is not among the flake inputs fails with a message naming both', () => {
    const r = evaluate('host-flake.nix', { inputs: { 'nixpkgs-synapse': { outPath: join(tmp, 'np-synapse'), rev: 'a'.repeat(40) } } });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.stderr).toMatch(/services\.nixos-desync\.desyncs\.hm: flake input "nixpkgs-home-manager" is not in services\.nixos-desync\.flake\.inputs \(inputs: nixpkgs-synapse\)/);
  });

  it('flake mode evaluates under pure evaluation (nix eval of a flake, no --impure): each desync is its input', () => {
    // A flake holding the module, the test's NixOS stand-in and nixpkgs' lib, with two
    // fake nixpkgs as real (path:) inputs.
    const dir = join(tmp, 'pure-flake');
    mkdirSync(join(dir, 'test'), { recursive: true });
    cpSync(join(ROOT, 'nix'), join(dir, 'nix'), { recursive: true });
    cpSync(HERE, join(dir, 'test', 'nix'), { recursive: true, filter: (src) => !src.endsWith('.ts') });
    cpSync(join(libDir, 'lib'), join(dir, 'nixpkgs-lib', 'lib'), { recursive: true });
    writeFileSync(join(dir, 'flake.nix'), `{
  inputs.nixpkgs-synapse = { url = "path:${join(tmp, 'np-synapse')}"; flake = false; };
  inputs.nixpkgs-home-manager = { url = "path:${join(tmp, 'np-hm')}"; flake = false; };
  outputs = inputs: {
    inspect = (import ./test/nix/eval.nix {
      nixpkgsLib = ./nixpkgs-lib;
      packageDir = "/nix/store/00000000000000000000000000000000-nixos-desync";
      nixpkgsPath = "/nonexistent";
      system = ${JSON.stringify(localSystem())};
      configModule = { ... }: { imports = [ ./test/nix/host-flake.nix ]; services.nixos-desync.flake.inputs = inputs; };
    }).inspect;
  };
}
`);
    const out = execFileSync('nix', [...FLAKES, 'eval', '--json', `path:${dir}#inspect.desyncs`], { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const desyncs = JSON.parse(out) as Inspect['desyncs'];
    expect(desyncs.synapse!.helloName).toBe('hello-synapse-rev');
    expect(desyncs.hm!.helloName).toBe('hello-hm-rev');
    expect(desyncs.synapse!.path).toMatch(/^\/nix\/store\/[0-9a-z]{32}-source$/);
    // The same flake in channel mode: pure evaluation cannot see the pin files, so the desync
    // falls back to the channel — and the evaluation says so.
    writeFileSync(join(dir, 'test', 'nix', 'host-flake.nix'), '{ ... }: { services.nixos-desync.desyncs.synapse = { }; }\n');
    const warnings = JSON.parse(execFileSync('nix', [...FLAKES, 'eval', '--json', `path:${dir}#inspect.warnings`], { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as string[];
    expect(warnings).toEqual([expect.stringMatching(/^services\.nixos-desync\.desyncs\.synapse: no pin file \/var\/lib\/nixos-desync\/pins\/synapse\.nix at evaluation time, so desync synapse uses the channel/)]);
  });

  it('channel mode: a configured desync without a pin file at evaluation time is a warning naming it and saying it uses the channel', () => {
    const stateDir = join(tmp, 'state-partial');
    mkdirSync(join(stateDir, 'pins'), { recursive: true });
    writeFileSync(join(stateDir, 'pins', 'home-manager.nix'), `{ desyncAge = 1; path = ${JSON.stringify(join(tmp, 'np-hm'))}; revision = "r"; }\n`);
    const ev = mustEvaluate('host-full.nix', { stateDir });
    expect(ev.desyncs['matrix-synapse']!.path).toBe(systemNixpkgs);
    expect(ev.warnings).toEqual(expect.arrayContaining([
      `services.nixos-desync.desyncs.matrix-synapse: no pin file ${stateDir}/pins/matrix-synapse.nix at evaluation time, so desync matrix-synapse uses the channel ` +
        "(this configuration's nixpkgs, pkgs.path), not its gated pin. This is expected before the loop's first run on this host; on a machine that evaluates " +
        'for another host (nixos-rebuild --target-host, colmena, deploy-rs, Hydra) it deploys the revision the gate may have rejected: use flake mode there ' +
        '(services.nixos-desync.flake, docs/nixos.md "Flakes").',
    ]));
    expect(ev.warnings.filter((w) => w.includes('desyncs.home-manager:'))).toEqual([]);
    // The desync with a pin file uses it, without a warning.
    expect(ev.desyncs['home-manager']).toMatchObject({ path: join(tmp, 'np-hm'), desyncAge: 1 });
  });
});
