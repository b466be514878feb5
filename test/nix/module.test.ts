// The Nix packaging without nixpkgs: every .nix file parses, and nix/module.nix is evaluated
// by real Nix with nixpkgs' real module system (lib.evalModules from the vendored
// test/fixtures/nixpkgs-lib) next to test/nix/nixos.nix (the NixOS options it touches). The generated config must pass `check-config`, the
// generated units must carry the intended argv and hardening (the loop sandboxed, the
// activation in its own unconfined unit started through systemctl; `systemd-analyze
// security --offline=yes` rates the loop and the exporter <= 4.0), and — with the demo host's
// fake nixpkgs and fake nixos-rebuild — the generated upgrade unit's ExecStart is run for
// real, the module then reads the pins it wrote, and the exporter's ExecStart serves them.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, chmodSync, readFileSync, readdirSync, readlinkSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTools } from '../helpers/tools.js';
import { execArgv, parseUnit, single } from '../helpers/units.js';
import { CLI } from '../helpers/cli.js';
import { createDemoHost, FAKE_REBUILD } from '../../src/demo/host.js';
import { gitRevisionOf } from '../../src/demo/fake-nixpkgs.js';
import { nixpkgsLibDir } from '../helpers/nixpkgs-lib.js';
import { DURATION_RE } from '../../src/util/duration.js';
import { DESYNC_NAME_RE } from '../../src/config/schema.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HERE = fileURLToPath(new URL('./', import.meta.url));
const ENV = { ...process.env, NIX_CONFIG: 'sandbox = false\nsubstituters =' };

interface Evaluated {
  failedAssertions: string[];
  warnings: string[];
  configFile: string;
  configText: string;
  etc: Record<string, string>;
  systemPackages: string[];
  tmpfiles: string[];
  firewallTCP: number[];
  systemSources: { runId: string | null; builtAt: null; nixpkgs: { revision: string; path: string }; desyncs: Record<string, { revision: string; desyncAge: number; path: string }> };
  systemBuilderCommands: string;
  units: Record<string, string>;
  desyncs: Record<string, { path: string; revision: string | null; desyncAge: number | null; helloName: string }>;
}

const ok = requireTools('nix-instantiate');

describe.skipIf(!ok)('Nix packaging (real Nix, nixpkgs lib)', () => {
  let tmp: string;
  let libDir: string;
  let pkgDir: string;
  let fallbackNixpkgs: string;

  function evaluate(hostModule: string, testArgs: Record<string, unknown> = {}): Evaluated {
    const out = execFileSync(
      'nix-instantiate',
      [
        '--eval', '--strict', '--json', '--read-write-mode', join(HERE, 'eval.nix'), '-A', 'inspect',
        '--argstr', 'nixpkgsLib', libDir,
        '--argstr', 'packageDir', pkgDir,
        '--argstr', 'nixpkgsPath', fallbackNixpkgs,
        '--arg', 'configModule', hostModule.startsWith('/') ? hostModule : join(HERE, hostModule),
        '--argstr', 'testArgs', JSON.stringify(testArgs),
      ],
      { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    return JSON.parse(out) as Evaluated;
  }

  function evalArgs(hostModule: string, testArgs: Record<string, unknown> = {}): string[] {
    return [
      '--argstr', 'testArgs', JSON.stringify(testArgs),
      join(HERE, 'eval.nix'),
      '--argstr', 'nixpkgsLib', libDir,
      '--argstr', 'packageDir', pkgDir,
      '--argstr', 'nixpkgsPath', fallbackNixpkgs,
      '--arg', 'configModule', hostModule.startsWith('/') ? hostModule : join(HERE, hostModule),
    ];
  }

  /** A host configuration as a user writes it, in its own file (error messages name it). */
  function host(name: string, text: string): string {
    const file = join(tmp, 'hosts', name);
    mkdirSync(join(tmp, 'hosts'), { recursive: true });
    writeFileSync(file, text);
    return file;
  }

  /** What `nixos-rebuild build` does with a host: evaluate, check assertions, build. */
  function buildSystem(hostFile: string, testArgs: Record<string, unknown> = {}): { status: number | null; out: string; stderr: string } {
    const r = spawnSync('nix-build', ['--no-out-link', ...evalArgs(hostFile, testArgs), '-A', 'toplevel'], { env: ENV, encoding: 'utf8' });
    return { status: r.status, out: r.stdout.trim(), stderr: r.stderr };
  }

  /** Evaluation only (as `nixos-rebuild dry-build`): type errors and failed assertions. */
  function instantiateSystem(hostFile: string): { status: number | null; stderr: string } {
    const r = spawnSync('nix-instantiate', [...evalArgs(hostFile), '-A', 'toplevel'], { env: ENV, encoding: 'utf8' });
    return { status: r.status, stderr: r.stderr };
  }

  function evalJson<T>(attr: string, extra: string[] = []): T {
    const out = execFileSync('nix-instantiate', ['--eval', '--strict', '--json', ...evalArgs('host-minimal.nix'), '-A', attr, ...extra], {
      env: ENV,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return JSON.parse(out) as T;
  }

  function checkConfig(file: string): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [CLI, 'check-config', '--config', file], { env: ENV, encoding: 'utf8' });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'nixos-desync-nixmod-'));
    // The config check runs bin/nixos-desync inside a Nix build, as a nixbld user.
    chmodSync(tmp, 0o755);
    libDir = nixpkgsLibDir();
    // Stands in for the buildNpmPackage output: bin/nixos-desync runs this checkout's dist/.
    pkgDir = join(tmp, 'pkg');
    mkdirSync(join(pkgDir, 'bin'), { recursive: true });
    writeFileSync(join(pkgDir, 'bin', 'nixos-desync'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`);
    chmodSync(join(pkgDir, 'bin', 'nixos-desync'), 0o755);
    // pkgs.path of the evaluated "system": the desyncs' fallback before the first run.
    fallbackNixpkgs = join(tmp, 'system-nixpkgs');
    mkdirSync(fallbackNixpkgs);
    writeFileSync(join(fallbackNixpkgs, 'default.nix'), '{ ... }: { hello = { name = "hello-from-system-nixpkgs"; }; }\n');
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('every .nix file parses (nix-instantiate --parse)', () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.nix')) files.push(p);
      }
    };
    walk(join(ROOT, 'nix'));
    walk(HERE);
    files.push(join(ROOT, 'flake.nix'), join(ROOT, 'default.nix'));
    expect(files.map((f) => relative(ROOT, f))).toEqual(expect.arrayContaining(['flake.nix', 'default.nix', 'nix/module.nix', 'nix/package.nix', 'nix/tests/vm-test.nix']));
    for (const f of files) {
      const r = spawnSync('nix-instantiate', ['--parse', f], { env: ENV, encoding: 'utf8' });
      expect(r.status, `${relative(ROOT, f)}: ${r.stderr}`).toBe(0);
    }
  });

  it('a full host: the generated config passes check-config and says what the options say', () => {
    const stateDir = join(tmp, 'full-state');
    const ev = evaluate('host-full.nix', { stateDir });
    expect(ev.failedAssertions).toEqual([]);
    const r = checkConfig(ev.configFile);
    expect(r.status, r.stderr).toBe(0);
    const eff = JSON.parse(r.stdout);
    expect(eff.desyncs['home-manager']).toEqual({
      requireBuilds: ['home-manager', 'python3Packages.requests'],
      checks: [['/run/current-system/sw/bin/true', '--quick']],
      maxLagRebuilds: 14,
      maxBehind: '14d',
      nixpkgsConfig: {},
      units: [],
      healthChecks: [],
    });
    expect(eff.desyncs['matrix-synapse']).toMatchObject({
      maxLagRebuilds: 3, maxBehind: null, nixpkgsConfig: { allowUnfree: true },
      units: ['matrix-synapse.service', 'matrix-synapse-*.timer'],
      healthChecks: [['/run/current-system/sw/bin/curl', '-fsS', 'http://127.0.0.1:8008/health']],
    });
    expect(eff.desyncs.strict).toMatchObject({ maxLagRebuilds: 0 });
    expect(eff.exporter).toEqual({ listenAddress: '0.0.0.0:9799', webConfigFile: '/etc/nixos-desync/web.yml', prDesyncDir: '/var/lib/nixos/desyncs', prMaxDesyncAge: 5, upgradeUnit: null, flakeLock: null, runtimeMetrics: 'minimal' });
    expect(eff.onBreach).toBe('continue');
    expect(eff.stateDir).toBe(stateDir);
    expect(eff.timeouts).toEqual({ channel: '10m', build: '6h', check: '1h', system: '3h', health: '5m' });
    // The build is always nixos-rebuild build, inside the loop's sandbox; the activation is
    // exactly the built toplevel (no second evaluation): operation = "boot".
    expect(eff.system.build).toEqual([expect.stringMatching(/^\/nix\/store\/[^/]+-nixos-rebuild\/bin\/nixos-rebuild$/), 'build', '--no-flake', '--no-build-nix']);
    expect(eff.system.activate).toBe('boot');
    expect(eff.health).toEqual({ settle: '10s', failedUnits: true, ignoreUnits: [], checks: [], attribute: true, bisect: true, retryAfter: '12h' });
    const act = parseUnit(ev.units['nixos-desync-activate@.service']!);
    expect(execArgv(single(act, 'Service', 'ExecStart')!)).toEqual([expect.stringMatching(/^\/nix\/store\/[^/]+-nixos-desync-activate$/), '%i']);
    expect(act.Unit!.Description).toEqual(['nixos-desync activation of a built system (%i)']);

    expect(ev.etc['nixos-desync/config.json']).toBe(ev.configFile);
    expect(ev.systemPackages).toContain(pkgDir);
    expect(ev.tmpfiles).toEqual(['d /run/nixos-desync 0755 root root - -', 'L /run/reboot-required - - - - /run/nixos-desync/reboot-required', `d ${stateDir} 0755 root root - -`, 'd /root/.nix-defexpr 0755 root root - -']);
    expect(ev.firewallTCP).toEqual([9799]);
    // The loop writes the configured state dir.
    const upFull = parseUnit(ev.units['nixos-desync-upgrade.service']!);
    expect(upFull.Service!.ReadWritePaths).toEqual([stateDir, '-/nix/var/nix/profiles/per-user/root', '-/root/.nix-defexpr', '/run/nixos-desync']);

    const timer = parseUnit(ev.units['nixos-desync-upgrade.timer']!);
    expect(timer.Timer).toEqual({
      OnCalendar: ['Mon..Fri 03:00'],
      RandomizedDelaySec: ['45min'],
      FixedRandomDelay: ['true'],
      Persistent: ['false'],
      Unit: ['nixos-desync-upgrade.service'],
    });
    expect(timer.Install).toEqual({ WantedBy: ['timers.target'] });
    const exporter = parseUnit(ev.units['nixos-desync-exporter.service']!);
    expect(execArgv(single(exporter, 'Service', 'ExecStart')!)).toEqual([
      `${pkgDir}/bin/nixos-desync`, 'serve', '--config', ev.configFile, '--web.listen-address', '0.0.0.0:9799',
      // The web config reaches the dynamic user as a systemd credential (%d = its directory).
      '--web.config.file', '%d/web-config',
    ]);
    expect(exporter.Service!.LoadCredential).toEqual(['web-config:/etc/nixos-desync/web.yml']);
  });

  it('a minimal host gets the documented defaults', () => {
    const ev = evaluate('host-minimal.nix');
    expect(ev.failedAssertions).toEqual([]);
    const r = checkConfig(ev.configFile);
    expect(r.status, r.stderr).toBe(0);
    const eff = JSON.parse(r.stdout);
    expect(eff.desyncs).toEqual({});
    expect(eff.stateDir).toBe('/var/lib/nixos-desync');
    expect(eff.exporter.listenAddress).toBe('127.0.0.1:9793');
    expect(eff.system.activate).toBe('switch');
    expect(ev.firewallTCP).toEqual([]);
    expect(ev.tmpfiles).toEqual(['d /run/nixos-desync 0755 root root - -', 'L /run/reboot-required - - - - /run/nixos-desync/reboot-required', 'd /var/lib/nixos-desync 0755 root root - -', 'd /root/.nix-defexpr 0755 root root - -']);

    // The default package is nix/package.nix (buildNpmPackage is stubbed: its arguments are checked).
    expect(ev.systemPackages).toEqual([pkgDir]);
    const timer = parseUnit(ev.units['nixos-desync-upgrade.timer']!);
    expect(timer.Timer).toMatchObject({ OnCalendar: ['04:40'], RandomizedDelaySec: ['0'], FixedRandomDelay: ['false'], Persistent: ['true'] });

    const up = parseUnit(ev.units['nixos-desync-upgrade.service']!);
    expect(execArgv(single(up, 'Service', 'ExecStart')!)).toEqual([`${pkgDir}/bin/nixos-desync`, 'upgrade', '--config', ev.configFile]);
    expect(up.Service).toMatchObject({ Type: ['oneshot'], KillMode: ['mixed'], WorkingDirectory: ['/run/nixos-desync-upgrade'], RuntimeDirectory: ['nixos-desync-upgrade'] });
    // Like nixos-upgrade.service: the unit that runs `switch` is neither restarted nor stopped by it.
    expect(up.Unit).toMatchObject({ 'X-RestartIfChanged': ['false'], 'X-StopOnRemoval': ['false'] });
    // network-online for the channel download, nix-daemon for every Nix command (NIX_REMOTE=daemon).
    expect(up.Unit!.Wants).toEqual(['network-online.target nix-daemon.socket']);
    // verify-boot: a run caught up at boot (Persistent=) waits for the boot's health gate.
    expect(up.Unit!.After).toEqual(['network-online.target nix-daemon.socket nixos-desync-verify-boot.service']);
    // A run that dies (failure) or is stopped (ExecStopPost, which any end of the unit runs) starts the recovery at once;
    // "-": refused at shutdown without failing the stop.
    expect(up.Unit!.OnFailure).toEqual(['nixos-desync-recover.service']);
    const post = single(up, 'Service', 'ExecStopPost')!;
    expect(post.startsWith('-')).toBe(true);
    expect(execArgv(post.slice(1))).toEqual([expect.stringMatching(/^\/nix\/store\/[a-z0-9]{32}-systemd[^/]*\/bin\/systemctl$/), 'start', '--no-block', 'nixos-desync-recover.service']);
    // Root (owner of the state dir and the channel profile), but with no capability and a
    // read-only file system except what the loop writes; the store only through nix-daemon.
    expect(up.Service!.User).toBeUndefined();
    expect(up.Service!.DynamicUser).toBeUndefined();
    const envOf = (u: Record<string, Record<string, string[]>>): Record<string, string> =>
      Object.fromEntries(u.Service!.Environment!.map((e) => JSON.parse(e) as string).map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)]));
    const env = envOf(up);
    expect(env.HOME).toBe('/root');
    expect(env.NIX_PATH).toContain('nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos');
    expect(env.PATH).toMatch(/-nix\/bin:.*-coreutils\/bin:.*-gitMinimal\/bin:.*-systemd\/bin/);
    expect(env.NIX_REMOTE).toBe('daemon');
    expect(env.XDG_CACHE_HOME).toBe('/var/cache/nixos-desync');
    expect(up.Service).toMatchObject({
      CacheDirectory: ['nixos-desync'],
      CapabilityBoundingSet: [''],
      AmbientCapabilities: [''],
      NoNewPrivileges: ['true'],
      UMask: ['0022'],
      ProtectSystem: ['strict'],
      ReadWritePaths: ['/var/lib/nixos-desync', '-/nix/var/nix/profiles/per-user/root', '-/root/.nix-defexpr', '/run/nixos-desync'],
      ProtectHome: ['read-only'],
      PrivateTmp: ['true'],
      PrivateDevices: ['true'],
      ProtectKernelTunables: ['true'],
      ProtectKernelModules: ['true'],
      ProtectKernelLogs: ['true'],
      ProtectControlGroups: ['true'],
      RestrictNamespaces: ['true'],
      LockPersonality: ['true'],
      RestrictRealtime: ['true'],
      RestrictSUIDSGID: ['true'],
      SystemCallArchitectures: ['native'],
      SystemCallFilter: ['@system-service'],
      SystemCallErrorNumber: ['EPERM'],
      RestrictAddressFamilies: ['AF_UNIX', 'AF_INET', 'AF_INET6'],
      MemoryDenyWriteExecute: ['false'],
    });
    // Not set on purpose (see the comments in nix/module.nix).
    for (const k of ['ProtectProc', 'ProcSubset', 'PrivateUsers', 'PrivateNetwork', 'IPAddressDeny', 'User']) expect(up.Service![k], k).toBeUndefined();

    // The activation: a oneshot template unit the loop starts (systemctl start
    // nixos-desync-activate@<action>:<toplevel>.service, named in its environment) for exactly
    // the toplevel it built; exit 4 (units failed to start) is left to the health gate.
    const act = parseUnit(ev.units['nixos-desync-activate@.service']!);
    expect(eff.system.activate).toBe('switch');
    expect(env.NIXOS_DESYNC_ACTIVATION_UNIT).toBe('nixos-desync-activate');
    const [script, instance] = execArgv(single(act, 'Service', 'ExecStart')!);
    expect(instance).toBe('%i');
    const scriptText = readFileSync(script!, 'utf8');
    expect(scriptText).toMatch(/systemd-escape --unescape --path/);
    expect(scriptText).toMatch(/test\) exec "\$toplevel\/bin\/switch-to-configuration" test/);
    expect(scriptText).toMatch(/nix-env -p \/nix\/var\/nix\/profiles\/system --set "\$toplevel"/);
    expect(act.Service).toMatchObject({ Type: ['oneshot'], UMask: ['0022'], SuccessExitStatus: ['4'] });
    expect(act.Unit).toMatchObject({ 'X-RestartIfChanged': ['false'], 'X-StopOnRemoval': ['false'], Wants: ['network-online.target'], After: ['network-online.target'] });
    // Never ordered after the loop (the loop waits for it: After= would deadlock), never
    // started by anything else, never restarted by the switch it performs.
    expect(ev.units['nixos-desync-activate@.service']).not.toMatch(/nixos-desync-upgrade/);
    expect(act.Install).toBeUndefined();
    // Unconfined: nothing that breaks an activation (NoNewPrivileges: setuid/setcap programs;
    // mount namespaces: the activation's mounts; ...), and exactly nixos-upgrade.service's
    // environment: a root client of the local store, not of the daemon.
    for (const k of ['NoNewPrivileges', 'PrivateTmp', 'ProtectSystem', 'ProtectHome', 'PrivateDevices', 'CapabilityBoundingSet', 'SystemCallFilter', 'RestrictSUIDSGID', 'ProtectHostname', 'ProtectClock', 'User', 'DynamicUser']) {
      expect(act.Service![k], k).toBeUndefined();
    }
    const actEnv = envOf(act);
    const { NIX_REMOTE: _r, XDG_CACHE_HOME: _c, NIXOS_DESYNC_ACTIVATION_UNIT: _u, ...loopEnvRest } = env;
    expect(actEnv).toEqual(loopEnvRest);
    // At boot, only after an interrupted run: `nixos-desync recover` in the loop's sandbox and environment.
    const rec = parseUnit(ev.units['nixos-desync-recover.service']!);
    expect(execArgv(single(rec, 'Service', 'ExecStart')!)).toEqual([`${pkgDir}/bin/nixos-desync`, 'recover', '--config', ev.configFile]);
    expect(rec.Unit).toMatchObject({ ConditionPathExists: ['/var/lib/nixos-desync/journal.json'] });
    // Started by the loop's unit (never by itself); not ordered after it (verify-boot orders the loop after itself, itself after this).
    expect(rec.Unit!.After).toEqual(['nix-daemon.socket']);
    expect(rec.Unit!.OnFailure).toBeUndefined();
    expect(rec.Install).toEqual({ WantedBy: ['multi-user.target'] });
    expect(envOf(rec)).toEqual(env);
    const { ExecStart: _x, RuntimeDirectory: _rd, WorkingDirectory: _wd, Environment: _e1, ...recSandbox } = rec.Service!;
    const { ExecStart: _y, ExecStopPost: _p, RuntimeDirectory: _rd2, WorkingDirectory: _wd2, Environment: _e2, ...loopSandbox } = up.Service!;
    expect(recSandbox).toEqual(loopSandbox);

    const ex = parseUnit(ev.units['nixos-desync-exporter.service']!);
    expect(execArgv(single(ex, 'Service', 'ExecStart')!)).toEqual([
      `${pkgDir}/bin/nixos-desync`, 'serve', '--config', ev.configFile, '--web.listen-address', '127.0.0.1:9793',
    ]);
    expect(ex.Service).toMatchObject({
      DynamicUser: ['true'],
      MemoryDenyWriteExecute: ['false'],
      ProtectSystem: ['strict'],
      ProtectHome: ['true'],
      PrivateTmp: ['true'],
      PrivateDevices: ['true'],
      NoNewPrivileges: ['true'],
      CapabilityBoundingSet: [''],
      AmbientCapabilities: [''],
      RestrictAddressFamilies: ['AF_INET', 'AF_INET6', 'AF_UNIX'],
      SystemCallFilter: ['@system-service', '~@privileged'],
      SystemCallErrorNumber: ['EPERM'],
      SystemCallArchitectures: ['native'],
      ProtectProc: ['invisible'],
      PrivateUsers: ['false'],
      Restart: ['always'],
    });
    // Read-only: nothing may create or own a writable directory for the exporter.
    for (const k of ['StateDirectory', 'ReadWritePaths', 'User', 'LoadCredential']) expect(ex.Service![k], k).toBeUndefined();
    expect(ex.Install).toEqual({ WantedBy: ['multi-user.target'] });
  });

  it('without the loop: no loop or activation unit; a manual upgrade activates directly', () => {
    const ev = evaluate('host-no-loop.nix');
    expect(ev.failedAssertions).toEqual([]);
    const r = checkConfig(ev.configFile);
    expect(r.status, r.stderr).toBe(0);
    const eff = JSON.parse(r.stdout);
    expect(eff.system.activate).toBe('switch');
    expect(Object.keys(ev.units).sort()).toEqual(['nixos-desync-exporter.service']);
    expect(ev.tmpfiles).toEqual(['d /var/lib/nixos-desync 0755 root root - -']);
  });

  it('monitor first: system.autoUpgrade stays, the exporter alone watches nixos-upgrade.service with systemctl on its PATH', () => {
    const ev = evaluate('host-monitor.nix');
    expect(ev.failedAssertions).toEqual([]);
    const r = checkConfig(ev.configFile);
    expect(r.status, r.stderr).toBe(0);
    const eff = JSON.parse(r.stdout);
    expect(eff.exporter).toMatchObject({ upgradeUnit: 'nixos-upgrade.service', flakeLock: '/etc/nixos/flake.lock' });
    expect(eff.desyncs).toEqual({});
    expect(Object.keys(ev.units).sort()).toEqual(['nixos-desync-exporter.service']);
    const ex = parseUnit(ev.units['nixos-desync-exporter.service']!);
    const path = (ex.Service!.Environment ?? []).find((e) => e.startsWith('"PATH=') || e.startsWith('PATH='));
    expect(path, JSON.stringify(ex.Service!.Environment)).toMatch(/-systemd\/bin/);
    // Without system.autoUpgrade there is nothing to watch unless asked.
    const plain = JSON.parse(checkConfig(evaluate('host-no-loop.nix').configFile).stdout);
    expect(plain.exporter.upgradeUnit).toBeNull();
  });

  it('nix/package.nix: buildNpmPackage arguments (stubbed build)', () => {
    const expr = `
      let
        lib = import ${JSON.stringify(join(libDir, 'lib'))};
        importNpmLock = { __functor = _: a: { args = a; }; npmConfigHook = "hook"; };
        call = extra: import ${JSON.stringify(join(ROOT, 'nix', 'package.nix'))} ({
          inherit lib importNpmLock;
          nodejs = { name = "nodejs-24"; outPath = "/nix/store/00000000000000000000000000000000-nodejs-24"; };
          buildNpmPackage = a: a;
        } // extra);
        p = call { };
        h = call { npmDepsHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; };
        locked = p.npmDeps.args.packageLock.packages;
      in {
        inherit (p) pname version npmBuildScript npmFlags;
        nodejs = p.nodejs.name;
        mainProgram = p.meta.mainProgram;
        hook = p.npmConfigHook;
        unresolved = builtins.filter (n: n != "" && !(locked.\${n} ? resolved)) (builtins.attrNames locked);
        zod = locked."node_modules/zod".resolved;
        scoped = locked."node_modules/@types/node".resolved;
        postPatch = p.postPatch;
        postInstall = p.postInstall;
        hashVariant = { inherit (h) npmDepsHash; hasNpmDeps = h ? npmDeps; };
        keep = map (f: p.src.filter (${JSON.stringify(ROOT)} + f) "regular") [ "package.json" "package-lock.json" "tsconfig.json" "src/cli/main.ts" "alerts/nixos-desync.rules.yml" "dist/src/cli/main.js" "node_modules/zod/package.json" "test/nix/eval.nix" ".git/HEAD" ];
      }`;
    const out = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '-E', expr], { env: ENV, encoding: 'utf8' }));
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
    expect(out).toMatchObject({ pname: 'nixos-desync', version: pkg.version, npmBuildScript: 'build', nodejs: 'nodejs-24', mainProgram: 'nixos-desync', hook: 'hook', npmFlags: ['--ignore-scripts'] });
    expect(Object.keys(pkg.bin)).toEqual(['nixos-desync']);
    expect(out.unresolved).toEqual([]);
    expect(out.zod).toBe(`https://registry.npmjs.org/zod/-/zod-${lock.packages['node_modules/zod'].version}.tgz`);
    expect(out.scoped).toBe(`https://registry.npmjs.org/@types/node/-/node-${lock.packages['node_modules/@types/node'].version}.tgz`);
    // The installed wrapper passes the node flags of the bin's shebang (npmInstallHook's own
    // wrapper would drop them), e.g. the exporter's --max-semi-space-size.
    const shebang = readFileSync(join(ROOT, 'src/cli/main.ts'), 'utf8').split('\n', 1)[0]!;
    const flags = /^#!\/usr\/bin\/env -S node (.+)$/.exec(shebang)?.[1];
    expect(flags, shebang).toMatch(/--max-semi-space-size=\d+/);
    expect(out.postInstall).toContain(`makeWrapper /nix/store/00000000000000000000000000000000-nodejs-24/bin/node $out/bin/nixos-desync`);
    expect(out.postInstall).toContain(`--add-flags "${flags} $out/lib/node_modules/nixos-desync/${pkg.bin['nixos-desync']}"`);
    expect(out.postPatch).toMatch(/cp \/nix\/store\/[^ ]+-package-lock\.json package-lock\.json/);
    expect(out.hashVariant).toEqual({ npmDepsHash: 'sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', hasNpmDeps: false });
    // Source filter: what the build needs, not dist/, node_modules/, tests or .git.
    expect(out.keep).toEqual([true, true, true, true, true, false, false, false, false]);
  });

  describe('evaluation refuses what the tool would refuse, with the NixOS error a user sees', () => {
    const typeError = (option: string, type: string): string =>
      `error: A definition for option \`${option}' is not of type \`${type}'.`;

    it('a desync name outside ^[a-z0-9][a-z0-9_-]{0,62}$', () => {
      for (const [name, nixName] of [['Home Manager', '"Home Manager"'], ['a'.repeat(64), 'a'.repeat(64)], ['-x', '"-x"'], ['hm.x', '"hm.x"']]) {
        const file = host('bad-name.nix', `{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.desyncs.${JSON.stringify(name)}.requireBuilds = [ "home-manager" ];\n}\n`);
        const r = instantiateSystem(file);
        expect(r.status, name).toBe(1);
        expect(r.stderr, name).toContain(`error: A definition for option \`services.nixos-desync.desyncs.${nixName}.name' is not of type \`string matching the pattern ^[a-z0-9][a-z0-9_-]{0,62}$'.`);
        expect(r.stderr, name).toContain(JSON.stringify(name));
      }
      // The longest allowed name evaluates.
      expect(instantiateSystem(host('long-name.nix', `{ ... }: { services.nixos-desync.enable = true; services.nixos-desync.desyncs.a${'b'.repeat(62)} = { }; }`)).status).toBe(0);
    });

    it('durations outside the contract syntax (maxBehind, settings.timeouts)', () => {
      const dur = 'duration (1 to 999999999 followed by s, m, h, d or w: 30s 10m 3h 14d 2w)';
      let r = instantiateSystem(host('bad-behind.nix', '{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.desyncs.home-manager.maxBehind = "14 days";\n}\n'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(typeError('services.nixos-desync.desyncs.home-manager.maxBehind', `null or ${dur}`));
      expect(r.stderr).toMatch(/- In `[^']*bad-behind\.nix': "14 days"/);
      r = instantiateSystem(host('bad-settle.nix', '{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.health.settle = "10 s";\n}\n'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(typeError('services.nixos-desync.health.settle', `value "0s" (singular enum) or ${dur}`));
      expect(instantiateSystem(host('zero-settle.nix', '{ ... }: { services.nixos-desync.enable = true; services.nixos-desync.health.settle = "0s"; }')).status).toBe(0);
      r = instantiateSystem(host('bad-timeout.nix', '{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.settings.timeouts.build = "1.5h";\n}\n'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(typeError('services.nixos-desync.settings.timeouts.build', dur));
      expect(r.stderr).toMatch(/- In `[^']*bad-timeout\.nix': "1\.5h"/);
    });

    it('the duration and name types accept exactly what the tool accepts (DURATION_RE, DESYNC_NAME_RE)', () => {
      const durations = ['1s', '30s', '10m', '3h', '14d', '2w', '999999999w', '0s', '00s', '01m', '1000000000s', '1.5h', '1 h', '1H', '1ms', '1y', '', 's', '-1s', '1s ', ' 1s', '1d1h', '+1s'];
      const names = ['a', '0', 'home-manager', 'matrix_synapse', 'a'.repeat(63), 'a'.repeat(64), 'A', '-a', '_a', 'a b', 'a.b', 'é', '', 'a\n', 'a/b'];
      const probes = JSON.stringify({ names, durations });
      const got = evalJson<{ name: boolean[]; duration: boolean[] }>('typeChecks', ['--argstr', 'probes', probes]);
      expect(got.duration).toEqual(durations.map((d) => DURATION_RE.test(d)));
      expect(got.name).toEqual(names.map((n) => DESYNC_NAME_RE.test(n)));
      // The samples cover both verdicts.
      expect(new Set(got.duration)).toEqual(new Set([true, false]));
      expect(new Set(got.name)).toEqual(new Set([true, false]));
    });

    it('commands are argv lists, never shell strings (checks, settings.system.build)', () => {
      let r = instantiateSystem(host('bad-check.nix', '{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.desyncs.home-manager.checks = [ "/run/current-system/sw/bin/my-check --quick" ];\n}\n'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("error: A definition for option `services.nixos-desync.desyncs.home-manager.checks.\"[definition 1-entry 1]\"' is not of type `non-empty (list of string)'.");
      expect(r.stderr).toContain('"/run/current-system/sw/bin/my-check --quick"');
      r = instantiateSystem(host('empty-check.nix', '{ ... }: { services.nixos-desync.enable = true; services.nixos-desync.desyncs.hm.checks = [ [ ] ]; }'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('is not of type `non-empty (list of string)');
      r = instantiateSystem(host('bad-health-check.nix', '{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.health.checks = [ "curl -fsS http://127.0.0.1:8008/health" ];\n}\n'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("error: A definition for option `services.nixos-desync.health.checks.\"[definition 1-entry 1]\"' is not of type `non-empty (list of string)'.");
      r = instantiateSystem(host('bad-build.nix', '{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.settings.system.build = "nixos-rebuild build";\n}\n'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("error: A definition for option `services.nixos-desync.settings.system.build' is not of type `non-empty (list of string)'.");
    });

    it('runtime claims: a unit that is no unit name or glob, a health check as a shell string, a bad retryAfter', () => {
      let r = instantiateSystem(host('bad-unit.nix', '{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.desyncs.synapse.units = [ "matrix synapse.service" ];\n}\n'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(typeError('services.nixos-desync.desyncs.synapse.units."[definition 1-entry 1]"', 'systemd unit name (`*` allowed as a wildcard)'));
      expect(r.stderr).toContain('"matrix synapse.service"');
      r = instantiateSystem(host('bad-health-checks.nix', '{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.desyncs.synapse.healthChecks = [ "curl -fsS http://127.0.0.1:8008/health" ];\n}\n'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(typeError('services.nixos-desync.desyncs.synapse.healthChecks."[definition 1-entry 1]"', 'non-empty (list of string)'));
      r = instantiateSystem(host('bad-retry.nix', '{ ... }: { services.nixos-desync.enable = true; services.nixos-desync.health.retryAfter = "1 day"; }'));
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(typeError('services.nixos-desync.health.retryAfter', 'duration (1 to 999999999 followed by s, m, h, d or w: 30s 10m 3h 14d 2w)'));
      // A glob and a template instance are unit names.
      expect(instantiateSystem(host('good-unit.nix', '{ ... }: { services.nixos-desync.enable = true; services.nixos-desync.desyncs.hm.units = [ "home-manager-*.service" "container@synapse-lab.service" ]; }')).status).toBe(0);
    });

    it('webConfigFile as a path literal is refused before the secret is copied into the store', () => {
      const dir = join(tmp, 'secret-host');
      mkdirSync(dir, { recursive: true });
      // Unique content: its store path would be new if anything copied it.
      writeFileSync(join(dir, 'web.yml'), `basic_auth_users:\n  admin: $2y$10$${Date.now()}${Math.random()}\n`);
      const file = join(dir, 'host.nix');
      writeFileSync(file, '{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.exporter.webConfigFile = ./web.yml;\n}\n');
      // The store path `./web.yml` would get, computed without creating it.
      const wouldBe = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--json', '-E', `builtins.path { path = ${join(dir, 'web.yml')}; name = "web.yml"; }`], { env: ENV, encoding: 'utf8' })) as string;
      expect(wouldBe).toMatch(/^\/nix\/store\/[a-z0-9]{32}-web\.yml$/);
      const r = spawnSync('nix-instantiate', ['--read-write-mode', ...evalArgs(file), '-A', 'toplevel'], { env: ENV, encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(
        "error: A definition for option `services.nixos-desync.exporter.webConfigFile' is not of type `null or absolute path as a string (not a path literal: that would copy the file into the world-readable Nix store)'.",
      );
      expect(existsSync(wouldBe)).toBe(false);
    });

    it('webConfigFile in the store fails an assertion that says why', () => {
      const r = instantiateSystem(host('store-web.nix', '{ pkgs, ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.exporter.webConfigFile = "${builtins.toFile "web.yml" "{}"}";\n}\n'));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        /error:\s+Failed assertions:\s+- services\.nixos-desync\.exporter\.webConfigFile = "\/nix\/store\/[a-z0-9]{32}-web\.yml" is in the Nix store, which every local user can read, and a web config holds TLS keys and password hashes\. Keep the file outside the store/,
      );
      // A path outside the store, as a string, is what the option takes.
      expect(instantiateSystem(host('good-web.nix', '{ ... }: { services.nixos-desync.enable = true; services.nixos-desync.exporter.webConfigFile = "/run/secrets/web.yml"; }')).status).toBe(0);
    });

    it('system.autoUpgrade and the upgrade loop together fail an assertion; the exporter alone may run next to it', () => {
      const r = instantiateSystem('host-conflict.nix');
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(
        /error:\s+Failed assertions:\s+- services\.nixos-desync\.upgrade\.enable and system\.autoUpgrade\.enable are both true: two upgrade loops would fight over the channel and the system profile\. Set system\.autoUpgrade\.enable = false/,
      );
      const ok2 = instantiateSystem(host('exporter-next-to-autoupgrade.nix', '{ ... }: { system.autoUpgrade.enable = true; services.nixos-desync = { enable = true; upgrade.enable = false; }; }'));
      expect(ok2.status, ok2.stderr).toBe(0);
    });

    it('desyncs or exporter given through settings fail an assertion', () => {
      const r = instantiateSystem(host('settings-desyncs.nix', '{ ... }: { services.nixos-desync = { enable = true; settings.desyncs.hm = { }; }; }'));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/Failed assertions:\s+- services\.nixos-desync\.settings: set desyncs and exporter through services\.nixos-desync\.desyncs \/ \.exporter, not settings\./);
    });
  });

  describe('rollout.*: typed options for the config key `rollout`, credentials as file paths only', () => {
    const ring = (body: string): string => `{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.rollout = {\n${body}\n  };\n}\n`;

    it('a ring-2 host with a bearer token file: the config check-config accepts, exactly what the options say', () => {
      const ev = evaluate(host('rollout-bearer.nix', ring('    enable = true; ring = 2; minHosts = 3; soak = "1d"; onUnreachable = "proceed";\n    prometheus = { url = "https://prometheus.example:9090/prom"; bearerTokenFile = "/run/secrets/prometheus-token"; timeout = "10s"; };')));
      expect(ev.failedAssertions).toEqual([]);
      const r = checkConfig(ev.configFile);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).rollout).toEqual({
        prometheus: { url: 'https://prometheus.example:9090/prom', bearerTokenFile: '/run/secrets/prometheus-token', basicAuth: null, caFile: null, timeout: '10s' },
        ring: 2, minHosts: 3, soak: '1d', onUnreachable: 'proceed',
      });
    });

    it('basic auth and a CA file; the tool defaults otherwise; no rollout unless enabled', () => {
      const ev = evaluate(host('rollout-basic.nix', ring('    enable = true;\n    prometheus = { url = "http://10.0.0.5:9090"; basicAuth = { username = "fleet"; passwordFile = "/run/secrets/prom-pw"; }; caFile = "/etc/ssl/fleet-ca.pem"; };')));
      expect(ev.failedAssertions).toEqual([]);
      const r = checkConfig(ev.configFile);
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout).rollout).toEqual({
        prometheus: { url: 'http://10.0.0.5:9090', bearerTokenFile: null, basicAuth: { username: 'fleet', passwordFile: '/run/secrets/prom-pw' }, caFile: '/etc/ssl/fleet-ca.pem', timeout: '30s' },
        ring: 1, minHosts: 1, soak: '6h', onUnreachable: 'hold',
      });
      const off = evaluate(host('rollout-off.nix', ring('    prometheus.url = "http://10.0.0.5:9090";')));
      expect(JSON.parse(checkConfig(off.configFile).stdout).rollout).toBeNull();
    });

    it('a token file given as a path literal is refused before it is copied into the store', () => {
      const dir = join(tmp, 'rollout-secret');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'token'), `token-${Date.now()}-${Math.random()}\n`);
      const file = join(dir, 'host.nix');
      writeFileSync(file, ring('    enable = true;\n    prometheus = { url = "https://p.example"; bearerTokenFile = ./token; };'));
      const wouldBe = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--json', '-E', `builtins.path { path = ${join(dir, 'token')}; name = "token"; }`], { env: ENV, encoding: 'utf8' })) as string;
      const r = spawnSync('nix-instantiate', ['--read-write-mode', ...evalArgs(file), '-A', 'toplevel'], { env: ENV, encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("error: A definition for option `services.nixos-desync.rollout.prometheus.bearerTokenFile' is not of type `null or absolute path as a string");
      expect(existsSync(wouldBe)).toBe(false);
    });

    it.each([
      ['both credentials', '    enable = true;\n    prometheus = { url = "https://p.example"; bearerTokenFile = "/run/secrets/t"; basicAuth = { username = "u"; passwordFile = "/run/secrets/p"; }; };', /Failed assertions:\s+- services\.nixos-desync\.rollout\.prometheus: set bearerTokenFile or basicAuth, not both/],
      ['a credential in the store', '    enable = true;\n    prometheus = { url = "https://p.example"; bearerTokenFile = "${builtins.toFile "token" "x"}"; };', /Failed assertions:\s+- services\.nixos-desync\.rollout\.prometheus: a credential file is in the Nix store, which every local user can read/],
      ['no loop', '    enable = true;\n    prometheus.url = "https://p.example";\n  };\n  services.nixos-desync.upgrade = {\n    enable = false;', /Failed assertions:\s+- services\.nixos-desync\.rollout\.enable needs services\.nixos-desync\.upgrade\.enable/],
      ['credentials in the URL', '    enable = true;\n    prometheus.url = "https://user:pw@p.example";', /rollout\.prometheus\.url' is not of type `http:\/\/ or https:\/\/ URL without credentials, query or fragment'/],
      ['a soak that is no duration', '    enable = true;\n    soak = "6 hours";\n    prometheus.url = "https://p.example";', /rollout\.soak' is not of type/],
    ])('%s: refused with a message that says why', (name, body, message) => {
      const r = instantiateSystem(host(`rollout-bad-${name.replace(/\W+/g, '-')}.nix`, ring(body)));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(message);
    });
  });

  it.skipIf(!requireTools('systemd-socket-activate'))('exporter.socketActivation: a socket unit on the exporter address, and the service serves on the socket systemd passes it', async () => {
    expect(Object.keys(evaluate('host-minimal.nix').units).filter((u) => u.endsWith('.socket'))).toEqual([]);
    const port = await freePort();
    const stateDir = join(tmp, 'socket-state');
    const ev = evaluate(host('socket.nix', `{ ... }: {\n  services.nixos-desync = {\n    enable = true;\n    exporter = { socketActivation = true; port = ${port}; };\n    settings.stateDir = "${stateDir}";\n  };\n}\n`));
    expect(ev.failedAssertions).toEqual([]);
    const sock = parseUnit(ev.units['nixos-desync-exporter.socket']!);
    expect(sock.Socket).toEqual({ ListenStream: [`127.0.0.1:${port}`] });
    expect(sock.Install).toEqual({ WantedBy: ['sockets.target'] });
    const svc = parseUnit(ev.units['nixos-desync-exporter.service']!);
    // Started by its socket, not at boot; it never binds the address itself.
    expect(svc.Install).toBeUndefined();
    expect(svc.Unit!.Requires).toEqual(['nixos-desync-exporter.socket']);
    const argv = execArgv(single(svc, 'Service', 'ExecStart')!);
    expect(argv.slice(1)).toEqual(['serve', '--config', ev.configFile, '--web.systemd-socket']);
    // What systemd does with these two units: listen on ListenStream, then start ExecStart with the socket.
    const child = spawn('systemd-socket-activate', ['-l', sock.Socket!.ListenStream![0]!, ...argv], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stderr!.on('data', (b: Buffer) => void (log += b.toString()));
    try {
      for (let i = 0; i < 400 && !/Listening on/.test(log); i++) await new Promise((r) => setTimeout(r, 25));
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(20_000) });
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^nixos_desync_build_info\{version=/m);
    } finally {
      child.kill('SIGTERM');
    }
  }, 60_000);

  describe('checkConfig: the generated config is validated by `nixos-desync check-config` when the system is built', () => {
    const bad = '{ ... }: {\n  services.nixos-desync.enable = true;\n  services.nixos-desync.desyncs.home-manager.requireBuilds = [ "python3Packages..requests" ];\n  services.nixos-desync.settings.onBreach = "explode";\n}\n';

    it('a good config builds; /etc/nixos-desync/config.json is the checked file', () => {
      // A state dir of its own: a config never built before, so the check really runs here.
      const r = buildSystem(join(HERE, 'host-full.nix'), { stateDir: join(tmp, 'checked-state') });
      expect(r.status, r.stderr).toBe(0);
      // The check ran the CLI on the generated file.
      expect(r.stderr).toMatch(/-nixos-desync-unchecked\.json: valid/);
      const etcConfig = join(r.out, 'etc/nixos-desync/config.json');
      const checked = readlinkSync(etcConfig);
      expect(checked).toMatch(/^\/nix\/store\/[a-z0-9]{32}-nixos-desync\.json$/);
      expect(readlinkSync(checked)).toMatch(/-nixos-desync-unchecked\.json$/);
      // The units run the tool on that same checked file.
      const unit = readFileSync(join(r.out, 'etc/systemd/system/nixos-desync-upgrade.service'), 'utf8');
      expect(execArgv(single(parseUnit(unit), 'Service', 'ExecStart')!)).toEqual([`${pkgDir}/bin/nixos-desync`, 'upgrade', '--config', checked]);
    });

    it('a config the tool refuses fails the system build with the tool\'s message (exit 78 in the check)', () => {
      const r = buildSystem(host('bad-config.nix', bad));
      expect(r.status).toBe(100);
      expect(r.stderr).toContain('$.desyncs["home-manager"].requireBuilds[0]: must be a dot-joined path of Nix identifiers, e.g. python3Packages.requests');
      expect(r.stderr).toContain('$.onBreach: Invalid option: expected one of "fail"|"continue"');
      expect(r.stderr).toMatch(/error: builder for '\/nix\/store\/[a-z0-9]{32}-nixos-desync\.json\.drv' failed with exit code 78/);
      expect(r.stderr).toMatch(/error: 1 dependencies of derivation '[^']*-nixos-system-test\.drv' failed to build/);
    });

    it('checkConfig = false skips the check: the same config builds, unchecked', () => {
      const r = buildSystem(host('bad-config-unchecked.nix', bad.replace('{ ... }: {\n', '{ ... }: {\n  services.nixos-desync.checkConfig = false;\n')));
      expect(r.status, r.stderr).toBe(0);
      expect(readlinkSync(join(r.out, 'etc/nixos-desync/config.json'))).toMatch(/-nixos-desync-unchecked\.json$/);
      expect(r.stderr).not.toMatch(/valid|invalid config/);
    });
  });

  it('the option documentation renders: descriptions everywhere, computed defaults as literalExpression', () => {
    const docs = evalJson<{
      json: string;
      options: { name: string; description: string | null; type: string; internal: boolean; visible: boolean; default: string | null }[];
      defaultTexts: { name: string; kind: string | null }[];
    }>('docs');
    const visible = docs.options.filter((o) => o.visible && !o.internal);
    expect(visible.map((o) => o.name)).toEqual(expect.arrayContaining(['services.nixos-desync.enable', 'services.nixos-desync.desyncs.<name>.maxBehind', 'services.nixos-desync.settings.timeouts', 'services.nixos-desync.checkConfig']));
    for (const o of visible) {
      expect(o.description?.trim(), `${o.name} has no description`).toBeTruthy();
      // A default rendered from a value (not from a defaultText) must not be a store path.
      expect(o.default ?? '', o.name).not.toMatch(/\/nix\/store\//);
    }
    // defaultText is always a literalExpression/literalMD, never a plain string.
    for (const d of docs.defaultTexts) if (d.kind !== null) expect(['literalExpression', 'literalMD'], d.name).toContain(d.kind);
    // Computed defaults have one (the docs evaluation above has no pkgs: it would have failed).
    const withText = docs.defaultTexts.filter((d) => d.kind !== null).map((d) => d.name);
    expect(withText).toEqual(expect.arrayContaining(['services.nixos-desync.package', 'services.nixos-desync.configFile', 'services.nixos-desync.settings.system.build', 'services.nixos-desync.desyncs.<name>.path', 'services.nixos-desync.desyncs.<name>.pkgs']));
    expect(() => JSON.parse(docs.json)).not.toThrow();
  });

  it("flake.nix's nixosModules.default is this module: the same host evaluates to the same config and units", () => {
    const viaFile = evaluate('host-full.nix', { stateDir: join(tmp, 'flake-state') });
    const out = execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '--read-write-mode', ...evalArgs('host-full.nix', { stateDir: join(tmp, 'flake-state') }), '--arg', 'fromFlake', 'true', '-A', 'inspect'], {
      env: ENV,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const viaFlake = JSON.parse(out) as Evaluated;
    expect(viaFlake.configText).toBe(viaFile.configText);
    expect(viaFlake.units).toEqual(viaFile.units);
  });

  it('desyncs.<name>.path/pkgs fall back to the system nixpkgs before the first run', () => {
    const ev = evaluate('host-full.nix', { stateDir: join(tmp, 'empty-state') });
    for (const name of ['home-manager', 'matrix-synapse']) {
      expect(ev.desyncs[name]).toEqual({ path: fallbackNixpkgs, revision: null, desyncAge: null, helloName: 'hello-from-system-nixpkgs' });
    }
  });

  it('end to end: run the generated upgrade unit, read its pins back through the module, serve them', async () => {
    const host = await createDemoHost(join(tmp, 'e2e'), {
      revisions: [{ label: 'rev1' }, { label: 'rev2', broken: ['home-manager'] }],
      desyncs: {},
      systemPackages: { 'home-manager': 'home-manager', 'matrix-synapse': 'matrix-synapse' },
    });
    const port = await freePort();
    const rebuild = (action: string): string[] => [process.execPath, FAKE_REBUILD, action, '--host', host.dir];
    const args = {
      port,
      nixpkgs: host.channelLink,
      stateDir: host.stateDir,
      profilesDir: host.profilesDir,
      runDir: host.runDir,
      system: { build: rebuild('build'), activate: rebuild('switch') },
    };
    const runUpgradeUnit = (ev: Evaluated): void => {
      const up = parseUnit(ev.units['nixos-desync-upgrade.service']!);
      const [prog, ...rest] = execArgv(single(up, 'Service', 'ExecStart')!);
      // The host's stand-in systemctl on PATH (the health gate asks it for failed units).
      const r = spawnSync(prog!, rest, { env: { ...ENV, PATH: host.path }, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, r.stdout + r.stderr).toBe(0);
    };

    let ev = evaluate('host-e2e.nix', args);
    expect(ev.desyncs['home-manager']!.path).toBe(fallbackNixpkgs);
    runUpgradeUnit(ev);

    ev = evaluate('host-e2e.nix', args);
    const rev1 = ev.desyncs['home-manager']!;
    expect(rev1.path).toMatch(/^\/nix\/store\//);
    expect(rev1).toMatchObject({ revision: gitRevisionOf('rev1'), desyncAge: 0, helloName: 'hello-rev1' });

    await host.useRevision('rev2');
    runUpgradeUnit(ev);
    ev = evaluate('host-e2e.nix', args);
    // home-manager fails on rev2: its pin stays on rev1, one rebuild behind; synapse follows.
    expect(ev.desyncs['home-manager']).toMatchObject({ path: rev1.path, revision: gitRevisionOf('rev1'), desyncAge: 1, helloName: 'hello-rev1' });
    expect(ev.desyncs['matrix-synapse']).toMatchObject({ revision: gitRevisionOf('rev2'), desyncAge: 0, helloName: 'hello-rev2' });
    // The system built from these pins says so in its toplevel (nixos-desync-sources.json):
    // each desync's pin, and the pin set's id (the run that committed it).
    const setId = readlinkSync(join(host.stateDir, 'pins')).split('/')[1];
    expect(ev.systemSources).toMatchObject({
      runId: setId,
      builtAt: null,
      desyncs: {
        'home-manager': { revision: gitRevisionOf('rev1'), desyncAge: 1, path: rev1.path },
        'matrix-synapse': { revision: gitRevisionOf('rev2'), desyncAge: 0 },
      },
    });
    expect(ev.systemBuilderCommands).toMatch(/^cp \/nix\/store\/[0-9a-z]{32}-nixos-desync-sources\.json \$out\/nixos-desync-sources\.json$/m);

    const ex = parseUnit(ev.units['nixos-desync-exporter.service']!);
    const [prog, ...rest] = execArgv(single(ex, 'Service', 'ExecStart')!);
    expect(rest).toContain(`127.0.0.1:${port}`);
    const child = spawn(prog!, rest, { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const body = await scrape(child, `http://127.0.0.1:${port}/metrics`);
      expect(body).toMatch(/^nixos_desync_lag_rebuilds\{desync="home-manager"\} 1$/m);
      expect(body).toMatch(/^nixos_desync_lag_rebuilds\{desync="matrix-synapse"\} 0$/m);
      expect(body).toMatch(/^nixos_desync_max_lag_rebuilds\{desync="matrix-synapse"\} 2$/m);
    } finally {
      child.kill('SIGTERM');
    }
  }, 180_000);

  describe.skipIf(!requireTools('systemd-analyze'))('systemd-analyze', () => {
    const exposure = (file: string): number => {
      const r = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', file], { env: ENV, encoding: 'utf8' });
      const m = /Overall exposure level for \S+: ([0-9.]+)/.exec(r.stdout + r.stderr);
      expect(m, `${file}: ${r.stdout}${r.stderr}`).not.toBeNull();
      return Number(m![1]);
    };

    it('the loop and the exporter score <= 4.0 in `systemd-analyze security --offline=yes`; the activation is reported', () => {
      const ev = evaluate('host-minimal.nix');
      const dir = join(tmp, 'units');
      mkdirSync(dir, { recursive: true });
      const scores: Record<string, number> = {};
      for (const name of ['nixos-desync-upgrade.service', 'nixos-desync-exporter.service', 'nixos-desync-activate@.service']) {
        const file = join(dir, name);
        writeFileSync(file, ev.units[name]!);
        scores[name] = exposure(file);
        // The same check on the documented example unit.
        scores[`docs/systemd/${name}`] = exposure(join(ROOT, 'docs/systemd', name));
      }
      console.log('systemd-analyze security --offline=yes:', scores);
      for (const name of ['nixos-desync-upgrade.service', 'nixos-desync-exporter.service']) {
        expect(scores[name], name).toBeLessThanOrEqual(4.0);
        expect(scores[`docs/systemd/${name}`], `docs/systemd/${name}`).toBeLessThanOrEqual(4.0);
      }
      // The activation runs nixos-rebuild switch unconfined by design: reported, not bounded.
      expect(scores['nixos-desync-activate@.service']).toBeGreaterThan(0);
    });
  });

  it('docs/systemd examples carry the same commands and hardening as the generated units', () => {
    const ev = evaluate('host-minimal.nix');
    for (const name of ['nixos-desync-upgrade.service', 'nixos-desync-activate@.service', 'nixos-desync-recover.service', 'nixos-desync-verify-boot.service', 'nixos-desync-upgrade.timer', 'nixos-desync-exporter.service']) {
      const doc = parseUnit(readFileSync(join(ROOT, 'docs/systemd', name), 'utf8'));
      const gen = parseUnit(ev.units[name]!);
      const section = name.endsWith('.timer') ? 'Timer' : 'Service';
      const strip = (s: Record<string, string[]> | undefined): Record<string, string[]> => {
        const { ExecStart: _e, ExecStopPost: _p, Environment: _v, ...rest } = s ?? {};
        return rest;
      };
      expect(strip(doc[section]), name).toEqual(strip(gen[section]));
      expect(doc.Install, name).toEqual(gen.Install);
      if (section === 'Service') {
        // [Unit]: the same dependencies and switch behaviour.
        const { Description: _d, ...docUnit } = doc.Unit ?? {};
        const { Description: _g, ...genUnit } = gen.Unit ?? {};
        expect(docUnit, name).toEqual(genUnit);
      }
      if (section === 'Service') {
        const d = execArgv(single(doc, 'Service', 'ExecStart')!);
        const g = execArgv(single(gen, 'Service', 'ExecStart')!);
        expect(d[0]).toBe(name === 'nixos-desync-activate@.service' ? '/usr/local/bin/nixos-desync-activate' : '/usr/local/bin/nixos-desync');
        expect(d.slice(1)).toEqual(g.slice(1).map((a) => (a === ev.configFile ? '/etc/nixos-desync/config.json' : a)));
        // The stop hook (the loop's unit only): the same command with the host's systemctl.
        const post = (u: typeof doc): string[] | undefined => ((p) => (p === undefined ? undefined : [p[0]!, ...execArgv(p.slice(1))]))(single(u, 'Service', 'ExecStopPost'));
        expect(post(doc)?.slice(2), name).toEqual(post(gen)?.slice(2));
        if (post(gen)) expect(post(doc)!.slice(0, 2)).toEqual(['-', '/usr/bin/systemctl']);
        // Environment: the docs show the variables that are not host-specific.
        const envNames = (u: Record<string, Record<string, string[]>>): string[] => (u.Service!.Environment ?? []).map((e) => (JSON.parse(e) as string).split('=')[0]!);
        expect(envNames(gen)).toEqual(expect.arrayContaining(envNames(doc)));
      }
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
    });
  });
}

async function scrape(child: ChildProcess, url: string): Promise<string> {
  let log = '';
  child.stdout?.on('data', (b: Buffer) => (log += b.toString()));
  child.stderr?.on('data', (b: Buffer) => (log += b.toString()));
  const deadline = Date.now() + 20_000;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exporter exited with ${child.exitCode}: ${log}`);
    try {
      const res = await fetch(url);
      last = await res.text();
      if (res.ok && /nixos_desync_lag_rebuilds\{desync="home-manager"\}/.test(last)) return last;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`no usable /metrics from ${url} within 20s; last body: ${last.slice(0, 500)}; log: ${log}`);
}
