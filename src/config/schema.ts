// The config contract (docs/configuration.md) as a zod schema: defaults, unknown keys rejected.
import { z } from 'zod';
import { MAX_TIMER_MS, parseDuration } from '../util/duration.js';
import { DEFAULT_REBOOT_TRIGGERS, HHMM_RE, isTimeZone, REBOOT_TRIGGERS, WEEKDAYS } from './reboot-terms.js';

export const DESYNC_NAME_RE = /^[a-z0-9][a-z0-9_-]{0,62}$/;
// A Nix identifier as nixpkgs attribute names use them (no quoting, no interpolation).
const NIX_IDENT = "[A-Za-z_][A-Za-z0-9_'-]*";
export const ATTR_PATH_RE = new RegExp(`^${NIX_IDENT}(\\.${NIX_IDENT})*$`);
const RESERVED_IDENTS = new Set(['if', 'then', 'else', 'assert', 'with', 'let', 'in', 'rec', 'inherit', 'or']);

const duration = z.string().refine((s) => parseDuration(s) !== undefined, {
  message: 'must be a duration like 30s, 10m, 3h, 14d or 2w',
});

// Timeouts become Node timers, which fire at once above 2^31-1 ms (24.8 days): refuse those.
const timeout = duration.refine((s) => parseDuration(s)! <= MAX_TIMER_MS, {
  message: 'must be at most 24d (longer timers overflow and would fire immediately)',
});

const absPath = z
  .string()
  .min(1)
  .refine((s) => s.startsWith('/'), { message: 'must be an absolute path' })
  .refine((s) => !s.includes('\0') && !s.split('/').includes('..'), { message: 'must not contain NUL or ".." segments' });

const argv = z
  .array(z.string().refine((s) => !s.includes('\0'), { message: 'must not contain NUL' }))
  .min(1, { message: 'must be a non-empty argv array (program first)' })
  .refine((a) => a.length === 0 || a[0]!.length > 0, { message: 'program (first element) must not be empty' });

const attrPath = z
  .string()
  .max(512)
  .refine((s) => ATTR_PATH_RE.test(s) && !s.split('.').some((p) => RESERVED_IDENTS.has(p)), {
    message: 'must be a dot-joined path of Nix identifiers, e.g. python3Packages.requests',
  });

// nixpkgs `config` values are plain JSON data handed to Nix through builtins.fromJSON.
const jsonValue: z.ZodType<unknown> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(jsonValue), z.record(z.string(), jsonValue)]),
);

// A flake input name as Nix writes it in flake.nix and flake.lock (an attribute name).
export const FLAKE_INPUT_RE = /^[A-Za-z_][A-Za-z0-9_'-]{0,99}$/;
const flakeInput = z.string().regex(FLAKE_INPUT_RE, { message: 'must be a flake input name, e.g. nixpkgs-synapse' });

// A systemd unit name (or a glob of them, `*` only), as `systemctl list-units` prints it.
const unitName = z.string().regex(/^[A-Za-z0-9:_.@\\*-]{1,256}$/, { message: 'must be a systemd unit name like foo.service (`*` allowed as a wildcard)' });

const desync = z.strictObject({
  // Flake mode: the flake input this desync's nixpkgs comes from (default nixpkgs-<name>,
  // filled in by parseConfig in flake mode; see desyncInput).
  input: flakeInput.optional(),
  requireBuilds: z.array(attrPath).default([]),
  checks: z.array(argv).default([]),
  maxLagRebuilds: z.number().int().min(0).max(1_000_000).nullable().default(14),
  maxBehind: duration.nullable().default(null),
  nixpkgsConfig: z.record(z.string(), jsonValue).default({}),
  // What of the running system belongs to this desync: a failing unit matching one of these
  // globs, or a failing healthChecks argv, is attributed to it (health.attribute).
  units: z.array(unitName).default([]),
  healthChecks: z.array(argv).default([]),
});

// One message per mistake: a missing port says so, a port out of range says that.
const listenAddress = z.string().superRefine((s, ctx) => {
  const example = 'e.g. 127.0.0.1:9793, [::1]:9793 or :9793';
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*)(?::([0-9]*))?$/.exec(s);
  if (!m) ctx.addIssue({ code: 'custom', message: `must be host:port, ${example}` });
  else if (m[2] === undefined || m[2] === '') ctx.addIssue({ code: 'custom', message: `the port is missing: must be host:port, ${example}` });
  else if (m[2].length > 5 || Number(m[2]) > 65535) ctx.addIssue({ code: 'custom', message: 'port must be at most 65535' });
});

// Where the loop asks Prometheus (`rollout.prometheus`, `reboot.blockOnAlerts.prometheus`): a URL,
// or an object with credentials given as files only, so no secret lands in the config or the store.
const secretFile = absPath.refine((s) => !s.startsWith('/nix/store/'), {
  message: 'must not be in /nix/store (world-readable): use a file outside the store, e.g. /run/secrets/…',
});
export const prometheusEndpoint = z.preprocess(
  (v) => (typeof v === 'string' ? { url: v } : v),
  z
    .strictObject({
      url: z.string().superRefine((s, ctx) => {
        let u: URL;
        try {
          u = new URL(s);
        } catch {
          ctx.addIssue({ code: 'custom', message: 'must be an http(s) URL like http://prometheus.example:9090' });
          return;
        }
        if (u.protocol !== 'http:' && u.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: 'must be an http:// or https:// URL' });
        if (u.username !== '' || u.password !== '') ctx.addIssue({ code: 'custom', message: 'must not contain credentials: use basicAuth.passwordFile or bearerTokenFile' });
        if (u.search !== '' || u.hash !== '') ctx.addIssue({ code: 'custom', message: 'must not have a query or fragment (a path prefix such as /prometheus is fine)' });
      }),
      bearerTokenFile: secretFile.nullable().default(null),
      basicAuth: z.strictObject({ username: z.string().min(1).regex(/^[^:\0\r\n]+$/, { message: 'must not contain ":" or control characters' }), passwordFile: secretFile }).nullable().default(null),
      caFile: absPath.nullable().default(null),
      timeout: timeout.default('30s'),
    })
    .refine((e) => e.bearerTokenFile === null || e.basicAuth === null, { message: 'bearerTokenFile and basicAuth are exclusive (one Authorization header)' }),
);
export type PrometheusEndpoint = z.infer<typeof prometheusEndpoint>;

const hhmm = z.string().regex(HHMM_RE, { message: 'must be a 24-hour local time HH:MM, e.g. 02:00' });

// A regular expression given in the config (compiled once here so a bad one is exit 78).
const regex = z.string().min(1).max(1024).refine((s) => {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}, { message: 'must be a valid regular expression (JavaScript syntax)' });

const reboot = z
  .strictObject({
    enable: z.boolean().default(false),
    // A real schedule (src/reboot/schedule.ts); null = any time.
    window: z
      .strictObject({
        days: z.array(z.enum(WEEKDAYS)).min(1).nullable().default(null),
        start: hhmm.default('02:00'),
        end: hhmm.default('05:00'),
        timezone: z.string().max(128).refine(isTimeZone, { message: 'must be an IANA time zone, e.g. Europe/Berlin' }).nullable().default(null),
      })
      .nullable()
      .default(null),
    triggers: z.array(z.enum(REBOOT_TRIGGERS)).default([...DEFAULT_REBOOT_TRIGGERS]),
    command: argv.default(['systemctl', 'reboot']),
    // The file kured and nixos-needsreboot watch; null = none.
    sentinel: absPath.nullable().default('/run/reboot-required'),
    blockOnAlerts: z
      .strictObject({
        prometheus: prometheusEndpoint,
        // Alert names (alertname) that block a reboot while they fire.
        alertFilter: regex.default('.+'),
        firingOnly: z.boolean().default(true),
      })
      .nullable()
      .default(null),
  })
  .prefault({});

export const configSchema = z.strictObject({
  nixpkgs: absPath.default('/nix/var/nix/profiles/per-user/root/channels/nixos'),
  channel: z
    .strictObject({
      name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, { message: 'must be a channel name like nixos' }).default('nixos'),
      update: z.boolean().default(true),
    })
    .prefault({}),
  desyncs: z
    .record(z.string(), desync)
    .default({})
    .superRefine((rec, ctx) => {
      for (const name of Object.keys(rec)) {
        if (!DESYNC_NAME_RE.test(name)) {
          ctx.addIssue({ code: 'custom', path: [name], message: 'desync name must match ^[a-z0-9][a-z0-9_-]{0,62}$' });
        }
      }
    }),
  system: z
    .strictObject({
      // Channel mode: never a stray /etc/nixos/flake.nix (--no-flake), no evaluation of
      // config.nix.package before the system's (--no-build-nix, bash; ng only warns).
      build: argv.default(['nixos-rebuild', 'build', '--no-flake', '--no-build-nix']),
      // "switch" (test-activate, health gate, then profile + boot default), "boot", null (build
      // only) or an argv escape hatch run with env NIXOS_DESYNC_TOPLEVEL.
      activate: z.union([z.enum(['switch', 'boot']), argv]).nullable().default('switch'),
    })
    .prefault({}),
  health: z
    .strictObject({
      settle: z.union([z.literal('0s'), timeout]).default('10s'),
      failedUnits: z.boolean().default(true),
      ignoreUnits: z.array(unitName).default([]),
      checks: z.array(argv).default([]),
      // Runtime hold-back (step 8b): failures attributed to desyncs that moved hold those back.
      attribute: z.boolean().default(true),
      // Also find an undeclared culprit by halving the moved desyncs (each trial: one more activation).
      bisect: z.boolean().default(false),
      // A desync held back at runtime is not activated at a newer revision before this has passed.
      retryAfter: duration.default('24h'),
    })
    .prefault({}),
  // Flake mode (nixpkgs/channel must then be absent; checked in parseConfig, where their absence is visible).
  flake: z
    .strictObject({
      path: absPath.refine((s) => !/[#?]/.test(s), { message: 'must not contain "#" or "?" (it becomes a flake reference)' }).default('/etc/nixos'),
      host: z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,252}$/, { message: 'must be a nixosConfigurations attribute name, e.g. the host name' }).nullable().default(null),
      input: flakeInput.default('nixpkgs'),
      commitLockFile: z.boolean().default(false),
    })
    .nullable()
    .default(null),
  // Fleet rollout (docs/monitoring.md "Fleet rollouts"): a host of ring r > 0 adopts a candidate
  // only once minHosts hosts of ring r-1 ran it healthy for soak, as Prometheus sees it.
  rollout: z
    .strictObject({
      prometheus: prometheusEndpoint,
      ring: z.number().int().min(0).max(1000).default(1),
      minHosts: z.number().int().min(1).max(1_000_000).default(1),
      soak: z.union([z.literal('0s'), duration]).default('6h'),
      onUnreachable: z.enum(['hold', 'proceed']).default('hold'),
    })
    .nullable()
    .default(null),
  reboot,
  onBreach: z.enum(['fail', 'continue']).default('fail'),
  stateDir: absPath.default('/var/lib/nixos-desync'),
  profilesDir: absPath.default('/nix/var/nix/profiles'),
  runDir: absPath.default('/run'),
  timeouts: z
    .strictObject({
      channel: timeout.default('10m'),
      build: timeout.default('3h'),
      check: timeout.default('1h'),
      system: timeout.default('3h'),
      health: timeout.default('5m'),
    })
    .prefault({}),
  exporter: z
    .strictObject({
      listenAddress: listenAddress.default('127.0.0.1:9793'),
      webConfigFile: absPath.nullable().default(null),
      prDesyncDir: absPath.nullable().default(null),
      // The proposal's maxDesyncAge for the files in prDesyncDir (its default: 14 rebuilds);
      // null = unlimited. Gives them the same budget, breach and alerts as the loop's desyncs.
      prMaxDesyncAge: z.number().int().min(0).max(1_000_000).nullable().default(14),
      // A systemd unit to monitor, e.g. system.autoUpgrade's nixos-upgrade.service.
      upgradeUnit: z
        .string()
        .regex(/^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]{0,249}\.(service|timer|target|path|socket)$/, {
          message: 'must be a systemd unit name like nixos-upgrade.service',
        })
        .nullable()
        .default(null),
      // A flake.lock whose inputs' ages are exported.
      flakeLock: absPath.nullable().default(null),
      // Node.js runtime series: "minimal" (CPU, memory, fds, start time, event-loop lag) or "all".
      runtimeMetrics: z.enum(['minimal', 'all']).default('minimal'),
    })
    .prefault({}),
}).superRefine((c, ctx) => {
  // The settle time is spent inside timeouts.health: as long or longer, every healthy system would fail the gate.
  const settle = c.health.settle === '0s' ? 0 : parseDuration(c.health.settle)!;
  if (settle >= parseDuration(c.timeouts.health)!) {
    ctx.addIssue({ code: 'custom', path: ['health', 'settle'], message: `must be shorter than timeouts.health (${c.timeouts.health}): the settle time is part of the health gate's time budget` });
  }
});

export type Config = z.infer<typeof configSchema>;
export type DesyncConfig = z.infer<typeof desync>;
export type ActivateMode = NonNullable<Config['system']['activate']>;

/** The flake input of a desync (flake mode): its `input`, else `nixpkgs-<name>`. */
export function desyncInput(name: string, d: Pick<DesyncConfig, 'input'>): string {
  return d.input ?? `nixpkgs-${name}`;
}
