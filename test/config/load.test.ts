import { describe, it, expect } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configWarnings, loadConfig, parseConfig, resolveConfigPath, formatJsonPath, defaultFlakeHost } from '../../src/config/load.js';
import { parseDuration } from '../../src/util/duration.js';
import type { DesyncError } from '../../src/util/errors.js';

function problems(raw: unknown): Array<{ path: string; message: string }> {
  try {
    parseConfig(raw);
  } catch (err) {
    expect((err as DesyncError).code).toBe('E_CONFIG');
    return (err as DesyncError).details.problems as Array<{ path: string; message: string }>;
  }
  throw new Error('expected the config to be rejected');
}

describe('config', () => {
  it('an empty object gives every documented default', () => {
    const c = parseConfig({});
    expect(c).toEqual({
      nixpkgs: '/nix/var/nix/profiles/per-user/root/channels/nixos',
      channel: { name: 'nixos', update: true },
      desyncs: {},
      system: { build: ['nixos-rebuild', 'build', '--no-flake', '--no-build-nix'], activate: 'switch' },
      health: { settle: '10s', failedUnits: true, ignoreUnits: [], checks: [], attribute: true, bisect: false, retryAfter: '24h' },
      reboot: {
        enable: false, window: null, triggers: ['kernel', 'initrd', 'kernel-modules', 'firmware', 'kernel-params'],
        command: ['systemctl', 'reboot'], sentinel: '/run/reboot-required', blockOnAlerts: null,
      },
      flake: null,
      rollout: null,
      onBreach: 'fail',
      stateDir: '/var/lib/nixos-desync',
      profilesDir: '/nix/var/nix/profiles',
      runDir: '/run',
      timeouts: { channel: '10m', build: '3h', check: '1h', system: '3h', health: '5m' },
      exporter: { listenAddress: '127.0.0.1:9793', webConfigFile: null, prDesyncDir: null, prMaxDesyncAge: 14, upgradeUnit: null, flakeLock: null, runtimeMetrics: 'minimal' },
    });
  });

  it('reboot: a window gets its defaults; the sentinel follows runDir unless set', () => {
    const c = parseConfig({ runDir: '/tmp/run', reboot: { window: { days: ['Sat', 'Sun'], timezone: 'Europe/Berlin' }, blockOnAlerts: { prometheus: 'http://prom:9090' } } });
    expect(c.reboot.window).toEqual({ days: ['Sat', 'Sun'], start: '02:00', end: '05:00', timezone: 'Europe/Berlin' });
    expect(c.reboot.sentinel).toBe('/tmp/run/reboot-required');
    expect(c.reboot.blockOnAlerts).toMatchObject({ prometheus: { url: 'http://prom:9090' }, alertFilter: '.+', firingOnly: true });
    expect(parseConfig({ runDir: '/tmp/run', reboot: { sentinel: null } }).reboot.sentinel).toBeNull();
  });

  it.each([
    [{ reboot: { window: { start: '25:00' } } }, '$.reboot.window.start', /HH:MM/],
    [{ reboot: { window: { days: ['Monday'] } } }, '$.reboot.window.days[0]', /.+/],
    [{ reboot: { window: { days: [] } } }, '$.reboot.window.days', /.+/],
    [{ reboot: { window: { timezone: 'Mars/Olympus' } } }, '$.reboot.window.timezone', /IANA time zone/],
    [{ reboot: { triggers: ['systemd'] } }, '$.reboot.triggers[0]', /.+/],
    [{ reboot: { command: [] } }, '$.reboot.command', /argv/],
    [{ reboot: { blockOnAlerts: { prometheus: 'file:///etc/passwd' } } }, '$.reboot.blockOnAlerts.prometheus.url', /http/],
    [{ reboot: { blockOnAlerts: { prometheus: 'http://p:9090', alertFilter: '(' } } }, '$.reboot.blockOnAlerts.alertFilter', /regular expression/],
    [{ reboot: { allowReboot: true } }, '$.reboot', /unknown key/],
  ])('reboot: %j is refused at %s', (raw, path, msg) => {
    try {
      parseConfig(raw);
      expect.unreachable();
    } catch (err) {
      const problems = (err as { details: { problems: { path: string; message: string }[] } }).details.problems;
      const p = problems.find((x) => x.path === path);
      expect(p, JSON.stringify(problems)).toBeDefined();
      expect(p!.message).toMatch(msg);
    }
  });

  it('a desync gets its defaults: maxLagRebuilds 14, no time budget', () => {
    const c = parseConfig({ desyncs: { 'home-manager': { requireBuilds: ['home-manager', 'python3Packages.requests'] } } });
    expect(c.desyncs['home-manager']).toEqual({ requireBuilds: ['home-manager', 'python3Packages.requests'], checks: [], maxLagRebuilds: 14, maxBehind: null, nixpkgsConfig: {}, units: [], healthChecks: [] });
    expect(parseConfig({ desyncs: { a: { maxLagRebuilds: null } } }).desyncs.a!.maxLagRebuilds).toBeNull();
  });

  it('a desync declares its units (globs) and healthChecks (argv lists) for runtime attribution', () => {
    const c = parseConfig({ desyncs: { synapse: { units: ['matrix-synapse*.service'], healthChecks: [['/bin/curl', '-f', 'http://localhost:8008/health']] } }, health: { bisect: true, retryAfter: '3d' } });
    expect(c.desyncs.synapse!.units).toEqual(['matrix-synapse*.service']);
    expect(c.desyncs.synapse!.healthChecks).toEqual([['/bin/curl', '-f', 'http://localhost:8008/health']]);
    expect(c.health).toMatchObject({ attribute: true, bisect: true, retryAfter: '3d' });
  });

  it('accepts the full example of the contract', () => {
    const c = parseConfig({
      nixpkgs: '/nix/var/nix/profiles/per-user/root/channels/nixos',
      channel: { name: 'nixos', update: true },
      desyncs: { 'home-manager': { requireBuilds: ['home-manager'], checks: [['/usr/local/bin/my-check', '--quick']], maxLagRebuilds: 14, maxBehind: '14d', nixpkgsConfig: { allowUnfree: true } } },
      system: { build: ['nixos-rebuild', 'build'], activate: null },
      onBreach: 'continue',
      timeouts: { channel: '30s', build: '3h', check: '1h', system: '2w' },
      exporter: { listenAddress: '[::1]:9793', webConfigFile: '/etc/nixos-desync/web.yml', prDesyncDir: '/var/lib/nixos/desyncs', upgradeUnit: 'nixos-upgrade.service', flakeLock: '/etc/nixos/flake.lock' },
    });
    expect(c.exporter.upgradeUnit).toBe('nixos-upgrade.service');
    expect(c.system.activate).toBeNull();
    expect(c.onBreach).toBe('continue');
  });

  it.each([
    [{ foo: 1 }, '$', /unknown key\(s\): "foo"/],
    [{ desyncs: { x: { bogus: true } } }, '$.desyncs.x', /unknown key\(s\): "bogus"/],
    [{ desyncs: { '../../etc': {} } }, '$.desyncs["../../etc"]', /desync name must match/],
    [{ desyncs: { 'a b': {} } }, '$.desyncs["a b"]', /desync name must match/],
    [{ desyncs: { '$(reboot)': {} } }, '$.desyncs["$(reboot)"]', /desync name must match/],
    [{ desyncs: { Caps: {} } }, '$.desyncs.Caps', /desync name must match/],
    [{ desyncs: { ['a'.repeat(64)]: {} } }, `$.desyncs.${'a'.repeat(64)}`, /desync name must match/],
    [{ desyncs: { 'é': {} } }, '$.desyncs["é"]', /desync name must match/],
    [{ desyncs: { x: { requireBuilds: ['a"b'] } } }, '$.desyncs.x.requireBuilds[0]', /dot-joined path of Nix identifiers/],
    [{ desyncs: { x: { requireBuilds: ['a.${b}'] } } }, '$.desyncs.x.requireBuilds[0]', /dot-joined path/],
    [{ desyncs: { x: { requireBuilds: ['a..b'] } } }, '$.desyncs.x.requireBuilds[0]', /dot-joined path/],
    [{ desyncs: { x: { requireBuilds: ['let.x'] } } }, '$.desyncs.x.requireBuilds[0]', /dot-joined path/],
    [{ desyncs: { x: { checks: [[]] } } }, '$.desyncs.x.checks[0]', /non-empty argv/],
    [{ exporter: { upgradeUnit: '--all.service' } }, '$.exporter.upgradeUnit', /systemd unit name/],
    [{ exporter: { upgradeUnit: 'nixos-upgrade' } }, '$.exporter.upgradeUnit', /systemd unit name/],
    [{ exporter: { upgradeUnit: 'a b.service' } }, '$.exporter.upgradeUnit', /systemd unit name/],
    [{ exporter: { flakeLock: 'flake.lock' } }, '$.exporter.flakeLock', /absolute path/],
    [{ exporter: { runtimeMetrics: 'some' } }, '$.exporter.runtimeMetrics', /minimal|all/],
    [{ desyncs: { x: { checks: 'make check' } } }, '$.desyncs.x.checks', /expected array/],
    [{ desyncs: { x: { maxLagRebuilds: -1 } } }, '$.desyncs.x.maxLagRebuilds', /too small|>=0/],
    // #11.12: Node timers overflow above 24.8 days and would fire after 1 ms.
    [{ timeouts: { build: '4w' } }, '$.timeouts.build', /at most 24d/],
    [{ timeouts: { system: '25d' } }, '$.timeouts.system', /at most 24d/],
    [{ timeouts: { check: '597h' } }, '$.timeouts.check', /at most 24d/],
    [{ desyncs: { x: { maxLagRebuilds: 1.5 } } }, '$.desyncs.x.maxLagRebuilds', /int/],
    [{ desyncs: { x: { maxBehind: '14 days' } } }, '$.desyncs.x.maxBehind', /duration like/],
    [{ timeouts: { build: '0s' } }, '$.timeouts.build', /duration like/],
    [{ timeouts: { health: '4w' } }, '$.timeouts.health', /at most 24d/],
    [{ health: { settle: '30d' } }, '$.health.settle', /at most 24d/],
    [{ health: { settle: 'soon' } }, '$.health.settle', /duration like|Invalid/],
    // #18.9: the settle time is spent inside timeouts.health; as long or longer, every healthy system fails.
    [{ health: { settle: '5m' } }, '$.health.settle', /must be shorter than timeouts\.health \(5m\)/],
    [{ health: { settle: '2m' }, timeouts: { health: '1m' } }, '$.health.settle', /must be shorter than timeouts\.health \(1m\)/],
    [{ health: { ignoreUnits: ['a b.service'] } }, '$.health.ignoreUnits[0]', /systemd unit name/],
    [{ health: { checks: [[]] } }, '$.health.checks[0]', /non-empty argv/],
    [{ health: { retryAfter: 'tomorrow' } }, '$.health.retryAfter', /duration like/],
    [{ health: { attribute: 'yes' } }, '$.health.attribute', /boolean|Invalid/],
    [{ desyncs: { a: { units: ['a b.service'] } } }, '$.desyncs.a.units[0]', /systemd unit name/],
    [{ desyncs: { a: { healthChecks: [[]] } } }, '$.desyncs.a.healthChecks[0]', /non-empty argv/],
    [{ system: { activate: 'reboot' } }, '$.system.activate', /./],
    [{ onBreach: 'ignore' }, '$.onBreach', /fail|continue/],
    [{ stateDir: 'relative/dir' }, '$.stateDir', /absolute path/],
    [{ stateDir: '/var/../etc' }, '$.stateDir', /\.\./],
    [{ system: { build: 'nixos-rebuild build' } }, '$.system.build', /expected array/],
    [{ exporter: { listenAddress: 'localhost' } }, '$.exporter.listenAddress', /host:port/],
    [{ exporter: { listenAddress: '127.0.0.1:70000' } }, '$.exporter.listenAddress', /65535/],
    [{ channel: { name: 'nix os' } }, '$.channel.name', /channel name/],
  ])('rejects %j at %s', (raw, path, message) => {
    const ps = problems(raw);
    expect(ps.map((p) => p.path)).toContain(path);
    expect(ps.find((p) => p.path === path)!.message).toMatch(message);
  });

  it('accepts timeouts up to 24 days (the largest a timer honours) and maxLagRebuilds 0 (never stay behind)', () => {
    const c = parseConfig({ timeouts: { build: '24d', system: '3w', check: '596h', channel: '35791m' }, desyncs: { x: { maxLagRebuilds: 0 } } });
    expect(c.timeouts).toMatchObject({ build: '24d', system: '3w' });
    expect(c.desyncs.x!.maxLagRebuilds).toBe(0);
  });

  it('reports every problem at once', () => {
    const ps = problems({ onBreach: 'x', desyncs: { 'A': { maxBehind: 'soon' } }, extra: 1 });
    expect(ps.length).toBeGreaterThanOrEqual(3);
  });

  it('loadConfig names the file and the JSON problem; missing files are errors too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cfg-'));
    const f = join(dir, 'c.json');
    await writeFile(f, '{ "desyncs": ');
    await expect(loadConfig(f)).rejects.toMatchObject({ code: 'E_CONFIG', message: expect.stringMatching(/c\.json[\s\S]*not valid JSON/) });
    await expect(loadConfig(join(dir, 'nope.json'))).rejects.toMatchObject({ code: 'E_CONFIG', message: expect.stringMatching(/cannot read config file/) });
    await writeFile(f, '{}');
    await expect(loadConfig(f)).resolves.toMatchObject({ onBreach: 'fail' });
  });

  it('config path: flag, then $NIXOS_DESYNC_CONFIG, then /etc/nixos-desync/config.json', () => {
    expect(resolveConfigPath('/a.json', { NIXOS_DESYNC_CONFIG: '/b.json' })).toBe('/a.json');
    expect(resolveConfigPath(undefined, { NIXOS_DESYNC_CONFIG: '/b.json' })).toBe('/b.json');
    expect(resolveConfigPath(undefined, {})).toBe('/etc/nixos-desync/config.json');
  });

  it('channel mode: a nixos-rebuild system.build without --no-flake / --no-build-nix is warned about; the default and other commands are not', () => {
    expect(configWarnings(parseConfig({}))).toEqual([]);
    const old = configWarnings(parseConfig({ system: { build: ['/nix/store/x-nixos-rebuild/bin/nixos-rebuild', 'build'] } }));
    expect(old).toEqual([
      expect.stringMatching(/^system\.build \(\/nix\/store\/x-nixos-rebuild\/bin\/nixos-rebuild build\) has no --no-flake: nixos-rebuild builds \/etc\/nixos\/flake\.nix instead/),
      expect.stringMatching(/has no --no-build-nix: the bash nixos-rebuild evaluates config\.nix\.package before the system/),
    ]);
    expect(configWarnings(parseConfig({ system: { build: ['nixos-rebuild', 'build', '--no-flake', '--fast'] } }))).toEqual([]);
    expect(configWarnings(parseConfig({ system: { build: ['nixos-rebuild', 'build', '--flake', '/srv/f#h', '--no-build-nix'] } }))).toEqual([]);
    expect(configWarnings(parseConfig({ system: { build: ['nix-build', '/etc/nixos/system.nix'] } }))).toEqual([]);
    // Flake mode builds the flake on purpose.
    expect(configWarnings(parseConfig({ flake: { path: '/etc/nixos', host: 'h' } }))).toEqual([]);
  });

  it('durations and JSON paths', () => {
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('3h')).toBe(10_800_000);
    expect(parseDuration('14d')).toBe(1_209_600_000);
    expect(parseDuration('2w')).toBe(1_209_600_000);
    for (const bad of ['', '0s', '1.5h', '-1d', '10', 'd', '1y', ' 1d']) expect(parseDuration(bad)).toBeUndefined();
    expect(formatJsonPath(['desyncs', 'home-manager', 'checks', 0])).toBe('$.desyncs["home-manager"].checks[0]');
  });

  describe('flake mode', () => {
    it('fills the documented defaults: input nixpkgs, desync inputs nixpkgs-<name>, nixos-rebuild build --flake <path>#<host>', () => {
      const c = parseConfig({ flake: {}, desyncs: { synapse: {}, hm: { input: 'nixpkgs-home-manager' } } });
      expect(c.flake).toEqual({ path: '/etc/nixos', host: null, input: 'nixpkgs', commitLockFile: false });
      expect(c.desyncs.synapse!.input).toBe('nixpkgs-synapse');
      expect(c.desyncs.hm!.input).toBe('nixpkgs-home-manager');
      expect(c.system.build).toEqual(['nixos-rebuild', 'build', '--flake', `/etc/nixos#${defaultFlakeHost()}`, '--no-update-lock-file']);
      expect(defaultFlakeHost()).toMatch(/^[^.]+$/);
      const h = parseConfig({ flake: { path: '/srv/host', host: 'web1', commitLockFile: true } });
      expect(h.system.build).toEqual(['nixos-rebuild', 'build', '--flake', '/srv/host#web1', '--no-update-lock-file']);
      // An explicit system.build is kept as is.
      expect(parseConfig({ flake: {}, system: { build: ['/bin/true'] } }).system.build).toEqual(['/bin/true']);
      // The exporter shows the lock's input ages by default; an explicit value (even null) is kept.
      expect(c.exporter.flakeLock).toBe('/etc/nixos/flake.lock');
      expect(parseConfig({ flake: {}, exporter: { flakeLock: null } }).exporter.flakeLock).toBeNull();
      expect(parseConfig({}).exporter.flakeLock).toBeNull();
      // Channel mode: no input is invented.
      expect(parseConfig({ desyncs: { synapse: {} } }).desyncs.synapse!.input).toBeUndefined();
    });

    it.each([
      [{ flake: {}, nixpkgs: '/x' }, '$.nixpkgs', /must be absent in flake mode/],
      [{ flake: {}, channel: { update: false } }, '$.channel', /must be absent in flake mode/],
      [{ flake: { path: 'etc/nixos' } }, '$.flake.path', /must be an absolute path/],
      [{ flake: { path: '/etc/nixos#x' } }, '$.flake.path', /must not contain "#"/],
      [{ flake: { host: 'a b' } }, '$.flake.host', /nixosConfigurations attribute name/],
      [{ flake: { input: 'a.b' } }, '$.flake.input', /must be a flake input name/],
      [{ flake: {}, desyncs: { a: { input: '${x}' } } }, '$.desyncs.a.input', /must be a flake input name/],
      [{ flake: {}, desyncs: { a: { input: 'nixpkgs' } } }, '$.desyncs.a.input', /must not be the followed input/],
      [{ flake: {}, desyncs: { a: { input: 'p' }, b: { input: 'p' } } }, '$.desyncs.b.input', /already the input of desync "a"/],
      [{ flake: { bogus: 1 } }, '$.flake', /unknown key\(s\): "bogus"/],
    ])('refuses %j (78 at %s)', (raw, path, msg) => {
      const ps = problems(raw);
      expect(ps).toEqual(expect.arrayContaining([expect.objectContaining({ path, message: expect.stringMatching(msg) })]));
    });
  });

  describe('rollout', () => {
    it('defaults: ring 1, one upstream host, 6h soak, hold when Prometheus cannot answer', () => {
      expect(parseConfig({ rollout: { prometheus: 'http://prom:9090' } }).rollout).toEqual({
        prometheus: { url: 'http://prom:9090', bearerTokenFile: null, basicAuth: null, caFile: null, timeout: '30s' },
        ring: 1, minHosts: 1, soak: '6h', onUnreachable: 'hold',
      });
      expect(parseConfig({ rollout: { prometheus: { url: 'https://p/prom', bearerTokenFile: '/run/t' }, ring: 0, soak: '0s', onUnreachable: 'proceed' } }).rollout)
        .toMatchObject({ ring: 0, soak: '0s', onUnreachable: 'proceed', prometheus: { bearerTokenFile: '/run/t' } });
    });

    it.each([
      [{ rollout: {} }, '$.rollout.prometheus', /expected object/],
      [{ rollout: { prometheus: 'http://u:pw@p' } }, '$.rollout.prometheus.url', /must not contain credentials/],
      [{ rollout: { prometheus: { url: 'http://p', bearerTokenFile: '/nix/store/x-token' } } }, '$.rollout.prometheus.bearerTokenFile', /must not be in \/nix\/store/],
      [{ rollout: { prometheus: 'http://p', ring: -1 } }, '$.rollout.ring', /too small|>=0/],
      [{ rollout: { prometheus: 'http://p', ring: 1.5 } }, '$.rollout.ring', /int/],
      [{ rollout: { prometheus: 'http://p', minHosts: 0 } }, '$.rollout.minHosts', /too small|>=1/],
      [{ rollout: { prometheus: 'http://p', soak: '6 hours' } }, '$.rollout.soak', /duration/],
      [{ rollout: { prometheus: 'http://p', onUnreachable: 'fail' } }, '$.rollout.onUnreachable', /hold|proceed/],
      [{ rollout: { prometheus: 'http://p', rings: 2 } }, '$.rollout', /unknown key\(s\): "rings"/],
    ])('refuses %j (78 at %s)', (raw, path, msg) => {
      const ps = problems(raw);
      expect(ps).toEqual(expect.arrayContaining([expect.objectContaining({ path, message: expect.stringMatching(msg) })]));
    });
  });
});

describe('config problems a newcomer reads (issue 22)', () => {
  it.each([
    [{ timeouts: { build: 'abc' } }, '$.timeouts.build', 'must be a duration like 30s, 10m, 3h, 14d or 2w'],
    [{ health: { settle: '3 hours' } }, '$.health.settle', /^must be a duration/],
    [{ exporter: { listenAddress: '127.0.0.1' } }, '$.exporter.listenAddress', /^the port is missing/],
    [{ exporter: { listenAddress: '[::1]:' } }, '$.exporter.listenAddress', /^the port is missing/],
    [{ exporter: { listenAddress: '127.0.0.1:70000' } }, '$.exporter.listenAddress', 'port must be at most 65535'],
    [{ exporter: { listenAddress: 'a b:1' } }, '$.exporter.listenAddress', /^must be host:port/],
  ])('%j: exactly one message for %s', (raw, path, message) => {
    const ps = problems(raw).filter((p) => p.path === path);
    expect(ps).toHaveLength(1);
    if (typeof message === 'string') expect(ps[0]!.message).toBe(message);
    else expect(ps[0]!.message).toMatch(message);
  });

  it('a too long but well-formed timeout says only that it is too long', () => {
    expect(problems({ timeouts: { build: '4w' } })).toEqual([{ path: '$.timeouts.build', message: expect.stringMatching(/^must be at most 24d/) }]);
  });

  it.each([
    [{ timeout: {} }, '$', '"timeout" (did you mean "timeouts"?)'],
    [{ desyncs: { hm: { maxLagRebuild: 3 } } }, '$.desyncs.hm', '"maxLagRebuild" (did you mean "maxLagRebuilds"?)'],
    [{ desyncs: { hm: { requirebuilds: [] } } }, '$.desyncs.hm', '"requirebuilds" (did you mean "requireBuilds"?)'],
    [{ exporter: { listenadress: 'x' } }, '$.exporter', '"listenadress" (did you mean "listenAddress"?)'],
    [{ flake: { commitLockfile: true } }, '$.flake', '"commitLockfile" (did you mean "commitLockFile"?)'],
  ])('unknown key %j gets a "did you mean"', (raw, path, text) => {
    expect(problems(raw)).toEqual([{ path, message: expect.stringContaining(text) }]);
  });

  it('an unknown key nothing resembles gets no guess', () => {
    expect(problems({ frobnicate: 1 })).toEqual([{ path: '$', message: 'unknown key(s): "frobnicate"' }]);
  });

  it('a missing config file names --config and NIXOS_DESYNC_CONFIG', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-cfg-'));
    await expect(loadConfig(join(dir, 'nope.json'))).rejects.toMatchObject({
      code: 'E_CONFIG',
      message: expect.stringMatching(/cannot read config file: ENOENT.*--config FILE or \$NIXOS_DESYNC_CONFIG; the default is \/etc\/nixos-desync\/config\.json/),
    });
  });
});
