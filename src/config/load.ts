// Reads and validates the config; every problem is reported with its JSON path (exit 78).
import { readFile } from 'node:fs/promises';
import { configSchema, type Config } from './schema.js';
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
  if (r.success) return r.data;
  const problems: ConfigProblem[] = r.error.issues.map((i) => {
    let message = i.message;
    if (i.code === 'unrecognized_keys') message = `unknown key(s): ${i.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    return { path: formatJsonPath(i.path), message };
  });
  throw configError(file, problems, r.error);
}

export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw configError(file, [{ path: '$', message: `cannot read config file: ${errorMessage(err)}` }], err);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw configError(file, [{ path: '$', message: `not valid JSON: ${errorMessage(err)}` }], err);
  }
  return parseConfig(raw, file);
}
