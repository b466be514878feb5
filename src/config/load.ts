// Reads and validates the config; every problem is reported with its JSON path (exit 78).
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { ZodType } from 'zod';
import { configSchema, desyncInput, type Config } from './schema.js';
import { DesyncError, errorMessage } from '../util/errors.js';

export const DEFAULT_CONFIG_PATH = '/etc/nixos-desync/config.json';

export interface ConfigProblem {
  path: string;
  message: string;
}

export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? (env.NIXOS_DESYNC_CONFIG || DEFAULT_CONFIG_PATH);
}

/** `$.desyncs["home-manager"].requireBuilds[0]` — a JSON path a user can find in their file. */
export function formatJsonPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '$';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) out += `.${seg}`;
    else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

function configError(file: string, problems: ConfigProblem[], cause?: unknown): DesyncError {
  const lines = problems.map((p) => `  ${p.path}: ${p.message}`).join('\n');
  return new DesyncError('E_CONFIG', `invalid config ${file}:\n${lines}`, { cause, details: { file, problems } });
}

export function parseConfig(raw: unknown, file = '<config>'): Config {
  const r = configSchema.safeParse(raw);
  if (r.success) return withRunDirDefaults(r.data.flake === null ? r.data : withFlakeDefaults(r.data, raw as Record<string, unknown>, file), raw as Record<string, unknown>);
  const problems: ConfigProblem[] = [];
  for (const i of r.error.issues) {
    const path = formatJsonPath(i.path);
    let message = i.message;
    if (i.code === 'unrecognized_keys') {
      const known = knownKeysAt(configSchema, i.path);
      message = `unknown key(s): ${i.keys.map((k) => {
        const near = didYouMean(k, known);
        return `${JSON.stringify(k)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}`;
      }).join(', ')}`;
    }
    // One message per field: the first (most basic) problem, not every check it then fails too.
    if (!problems.some((p) => p.path === path)) problems.push({ path, message });
  }
  throw configError(file, problems, r.error);
}

/** `reboot.sentinel` defaults to `<runDir>/reboot-required` (/run/reboot-required at the defaults). */
function withRunDirDefaults(c: Config, raw: Record<string, unknown>): Config {
  if ((raw.reboot as Record<string, unknown> | undefined)?.sentinel === undefined) c.reboot.sentinel = `${c.runDir.replace(/\/+$/, '')}/reboot-required`;
  return c;
}

/** The host name `flake.host` defaults to (as nixos-rebuild --flake uses it). */
export function defaultFlakeHost(): string {
  return hostname().split('.')[0] || 'nixos';
}

/**
 * Flake mode: `nixpkgs`/`channel` must be absent (they would silently mean nothing), each
 * desync's `input` gets its default, and `system.build` defaults to
 * `nixos-rebuild build --flake <path>#<host>`. Only visible on the raw object (defaults hide absence).
 */
function withFlakeDefaults(c: Config, raw: Record<string, unknown>, file: string): Config {
  const flake = c.flake!;
  const problems: ConfigProblem[] = [];
  for (const key of ['nixpkgs', 'channel'] as const) {
    if (raw[key] !== undefined) problems.push({ path: formatJsonPath([key]), message: `must be absent in flake mode ("flake" is set: the system follows the flake input ${JSON.stringify(flake.input)})` });
  }
  const byInput = new Map<string, string>();
  for (const [name, d] of Object.entries(c.desyncs)) {
    const input = desyncInput(name, d);
    if (input === flake.input) problems.push({ path: formatJsonPath(['desyncs', name, 'input']), message: `must not be the followed input flake.input (${JSON.stringify(input)})` });
    const other = byInput.get(input);
    if (other !== undefined) problems.push({ path: formatJsonPath(['desyncs', name, 'input']), message: `input ${JSON.stringify(input)} is already the input of desync ${JSON.stringify(other)}: each desync needs its own input` });
    byInput.set(input, name);
    d.input = input;
  }
  if (problems.length > 0) throw configError(file, problems);
  // The exporter shows the age of every input of the host's lock unless told otherwise.
  if ((raw.exporter as Record<string, unknown> | undefined)?.flakeLock === undefined) c.exporter.flakeLock = `${flake.path}/flake.lock`;
  const system = raw.system as Record<string, unknown> | undefined;
  if (system?.build === undefined) {
    // --no-update-lock-file: Nix fails instead of re-locking (on Nix 2.8 --no-write-lock-file would re-lock in memory).
    c.system.build = ['nixos-rebuild', 'build', '--flake', `${flake.path}#${flake.host ?? defaultFlakeHost()}`, '--no-update-lock-file'];
  }
  return c;
}

/**
 * The config as check-config prints it: every default filled in, and itself a valid config
 * (flake mode leaves out `nixpkgs`/`channel`, which must be absent there).
 */
export function effectiveConfig(c: Config): Record<string, unknown> {
  const { nixpkgs, channel, ...rest } = c;
  return c.flake === null ? { nixpkgs, channel, ...rest } : rest;
}

/**
 * Advice about a valid config (printed by check-config and upgrade, never an error): in channel
 * mode a `nixos-rebuild` system.build without `--no-flake` builds /etc/nixos/flake.nix whenever
 * one exists, and the bash one without `--no-build-nix` evaluates config.nix.package first.
 */
export function configWarnings(c: Config): string[] {
  const argv = c.system.build;
  if (c.flake !== null || !/(^|\/)nixos-rebuild(-ng)?$/.test(argv[0] ?? '')) return [];
  const out: string[] = [];
  if (!argv.some((a) => a === '--no-flake' || a === '--flake' || a === '-F' || a.startsWith('--flake='))) {
    out.push(`system.build (${argv.join(' ')}) has no --no-flake: nixos-rebuild builds /etc/nixos/flake.nix instead of the channel configuration whenever that file exists; add "--no-flake" (the default has it)`);
  }
  if (!argv.some((a) => a === '--no-build-nix' || a === '--fast')) {
    out.push(`system.build (${argv.join(' ')}) has no --no-build-nix: the bash nixos-rebuild evaluates config.nix.package before the system (a third evaluation per run); add "--no-build-nix" (the default has it)`);
  }
  return out;
}

export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const hint = (err as NodeJS.ErrnoException).code === 'ENOENT'
      ? ` (name the file with --config FILE or $NIXOS_DESYNC_CONFIG; the default is ${DEFAULT_CONFIG_PATH})`
      : '';
    throw configError(file, [{ path: '$', message: `cannot read config file: ${errorMessage(err)}${hint}` }], err);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw configError(file, [{ path: '$', message: `not valid JSON: ${errorMessage(err)}` }], err);
  }
  return parseConfig(raw, file);
}

type SchemaDef = { type: string; innerType?: ZodType; in?: ZodType; out?: ZodType; options?: ZodType[]; shape?: Record<string, ZodType>; valueType?: ZodType };
const defOf = (t: ZodType | undefined): SchemaDef | undefined => (t as unknown as { _zod?: { def: SchemaDef } } | undefined)?._zod?.def;

/** The keys the object at `path` of the schema accepts (for "did you mean"). */
function knownKeysAt(schema: ZodType, path: ReadonlyArray<PropertyKey>): string[] {
  let nodes: ZodType[] = [schema];
  const objects = (t: ZodType): SchemaDef[] => {
    const d = defOf(t);
    if (!d) return [];
    if (d.type === 'object') return [d];
    if (d.innerType) return objects(d.innerType);
    if (d.type === 'pipe') return [...objects(d.in!), ...objects(d.out!)];
    if (d.type === 'union') return d.options!.flatMap(objects);
    if (d.type === 'record') return [d];
    return [];
  };
  for (const seg of path) {
    nodes = nodes.flatMap(objects).flatMap((d) => (d.type === 'record' ? [d.valueType!] : d.shape?.[String(seg)] ? [d.shape[String(seg)]!] : []));
  }
  return [...new Set(nodes.flatMap(objects).flatMap((d) => Object.keys(d.shape ?? {})))];
}

/** The known key closest to `key` (case-insensitive, at most 2 edits away), if any. */
export function didYouMean(key: string, known: string[]): string | undefined {
  let best: { k: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase());
    if (d <= Math.min(2, Math.floor(k.length / 3)) && (!best || d < best.d)) best = { k, d };
  }
  return best?.k;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
