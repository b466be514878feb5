// The web config's YAML, read as the exporter-toolkit's Go structs read it: a small value tree
// (aliases expanded within a node budget), strict field readers that name the field in every
// error, Go durations, and the config-relative files it names.
import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, type Document, type Node as YamlNode } from 'yaml';
import { errorMessage } from '../util/errors.js';

const MAX_FILE_BYTES = 1024 * 1024;

export class FieldError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

export type Value =
  | { kind: 'null' }
  | { kind: 'scalar'; value: unknown; text: string }
  | { kind: 'seq'; items: Value[] }
  | { kind: 'map'; entries: Array<[string, Value]> };

export interface Walk {
  doc: Document;
  src: string;
  /** Nodes left to visit: aliases can make a small file expand exponentially ("billion laughs"). */
  budget: number;
}

export function toValue(node: unknown, w: Walk, field: string, depth = 0): Value {
  if (depth > 16) throw new FieldError(field, 'nested too deeply');
  if (--w.budget < 0) throw new FieldError(field, 'too many YAML nodes (alias expansion?)');
  if (node === null || node === undefined) return { kind: 'null' };
  if (isAlias(node)) return toValue(node.resolve(w.doc), w, field, depth + 1);
  if (isScalar(node)) {
    if (node.value === null) return { kind: 'null' };
    // Go's yaml decodes any scalar into a string field as written (`X-XSS-Protection: 1` → "1").
    const text = typeof node.value === 'string' ? node.value : node.range ? w.src.slice(node.range[0], node.range[1]).trim() : String(node.value);
    return { kind: 'scalar', value: node.value, text };
  }
  if (isSeq(node)) return { kind: 'seq', items: node.items.map((n, i) => toValue(n, w, `${field}[${i}]`, depth + 1)) };
  if (isMap(node)) {
    const entries: Array<[string, Value]> = [];
    for (const pair of node.items) {
      const k = toValue(pair.key as YamlNode, w, field, depth + 1);
      if (k.kind !== 'scalar') throw new FieldError(field, 'map keys must be plain strings');
      entries.push([k.text, toValue(pair.value, w, field ? `${field}.${k.text}` : k.text, depth + 1)]);
    }
    return { kind: 'map', entries };
  }
  throw new FieldError(field, 'unsupported YAML node');
}

export function fields(v: Value, field: string, allowed: readonly string[]): Map<string, Value> {
  if (v.kind === 'null') return new Map();
  if (v.kind !== 'map') throw new FieldError(field, `must be a mapping with the keys ${allowed.join(', ')}`);
  const out = new Map<string, Value>();
  for (const [k, val] of v.entries) {
    const name = field ? `${field}.${k}` : k;
    if (!allowed.includes(k)) throw new FieldError(name, `unknown key (allowed here: ${allowed.join(', ')})`);
    out.set(k, val);
  }
  return out;
}

export function str(v: Value | undefined, field: string): string {
  if (!v || v.kind === 'null') return '';
  if (v.kind !== 'scalar') throw new FieldError(field, 'must be a string');
  return v.text;
}

export function bool(v: Value | undefined, field: string, dflt: boolean): boolean {
  if (!v || v.kind === 'null') return dflt;
  if (v.kind !== 'scalar' || typeof v.value !== 'boolean') throw new FieldError(field, 'must be true or false');
  return v.value;
}

export function strList(v: Value | undefined, field: string): string[] | null {
  if (!v || v.kind === 'null') return null;
  if (v.kind !== 'seq') throw new FieldError(field, 'must be a list of strings');
  return v.items.map((item, i) => str(item, `${field}[${i}]`));
}

export function strMap(v: Value | undefined, field: string): Array<[string, string]> {
  if (!v || v.kind === 'null') return [];
  if (v.kind !== 'map') throw new FieldError(field, 'must be a mapping of strings');
  return v.entries.map(([k, val]) => [k, str(val, `${field}.${k}`)]);
}

const GO_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration (`1s`, `1m30s`, `250ms`, `0`) or an integer of nanoseconds, in ms. */
export function goDuration(v: Value | undefined, field: string): number {
  if (!v || v.kind === 'null') return 0;
  if (v.kind === 'scalar' && typeof v.value === 'number') {
    if (!Number.isInteger(v.value) || v.value < 0) throw new FieldError(field, 'must be a duration like 1s or 500ms');
    return v.value / 1e6;
  }
  const s = str(v, field);
  if (s === '0') return 0;
  const re = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)/gy;
  let ms = 0;
  let pos = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    ms += Number(m[1]) * GO_UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (s === '' || pos !== s.length) throw new FieldError(field, `invalid duration ${JSON.stringify(s)} (use e.g. 1s, 500ms, 1m30s)`);
  return ms;
}

/** config_util.JoinDir: a relative path is relative to the config file's directory. */
export function joinDir(dir: string, p: string): string {
  return p === '' || isAbsolute(p) ? p : join(dir, p);
}

export async function readSmall(path: string, field: string): Promise<string> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new FieldError(field, `${path} is not a regular file`);
    if (st.size > MAX_FILE_BYTES) throw new FieldError(field, `${path} is larger than ${MAX_FILE_BYTES} bytes`);
    return await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof FieldError) throw err;
    throw new FieldError(field, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}
