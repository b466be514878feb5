// A flake's lock file (`flake.lock`, read-only here): the age of every input the flake
// locks directly, for flake_input_last_modified_timestamp_seconds. Never evaluated; strict
// JSON with a size cap, so a hostile or truncated file is an error, not a crash.
import { readFile, stat } from 'node:fs/promises';
import { DesyncError, errorMessage } from '../util/errors.js';

export const FLAKE_LOCK_MAX_BYTES = 4 * 1024 * 1024;

export interface LockedInput {
  /** The input's name in the flake (`inputs.<name>`). */
  input: string;
  /** `locked.lastModified` (Unix seconds): the date of the locked commit. */
  lastModified: number;
  /** `locked.rev`, when the input is a git revision. */
  rev: string | null;
}

const bad = (why: string): DesyncError => new DesyncError('E_FLAKE_LOCK', `not a flake lock file: ${why}`);
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The root's direct inputs, sorted by name. An input that `follows` another (a path, not a
 * node) is the same revision as the one it follows and is left out; so is a node without
 * `locked.lastModified` (e.g. a `path:` input).
 */
export function parseFlakeLock(text: string): LockedInput[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw bad(errorMessage(err));
  }
  if (!isObj(doc) || !isObj(doc.nodes)) throw bad('no "nodes" object');
  const rootKey = typeof doc.root === 'string' ? doc.root : 'root';
  const root = doc.nodes[rootKey];
  if (!isObj(root)) throw bad(`no root node ${JSON.stringify(rootKey)}`);
  const inputs = root.inputs ?? {};
  if (!isObj(inputs)) throw bad('root "inputs" is not an object');
  const out: LockedInput[] = [];
  for (const [input, ref] of Object.entries(inputs)) {
    if (typeof ref !== 'string') continue; // follows
    const node = doc.nodes[ref];
    if (!isObj(node)) throw bad(`input ${JSON.stringify(input)} names missing node ${JSON.stringify(ref)}`);
    const locked = node.locked;
    if (!isObj(locked) || typeof locked.lastModified !== 'number' || !Number.isFinite(locked.lastModified)) continue;
    out.push({ input, lastModified: locked.lastModified, rev: typeof locked.rev === 'string' ? locked.rev : null });
  }
  return out.sort((a, b) => (a.input < b.input ? -1 : a.input > b.input ? 1 : 0));
}

export async function readFlakeLock(file: string): Promise<LockedInput[]> {
  const st = await stat(file).catch((err: unknown) => {
    throw new DesyncError('E_FLAKE_LOCK', `${file}: ${errorMessage(err)}`, { cause: err });
  });
  if (!st.isFile()) throw new DesyncError('E_FLAKE_LOCK', `${file}: not a regular file`);
  if (st.size > FLAKE_LOCK_MAX_BYTES) throw new DesyncError('E_FLAKE_LOCK', `${file}: larger than ${FLAKE_LOCK_MAX_BYTES} bytes`);
  const text = await readFile(file, 'utf8');
  try {
    return parseFlakeLock(text);
  } catch (err) {
    throw new DesyncError('E_FLAKE_LOCK', `${file}: ${errorMessage(err)}`, { cause: err });
  }
}
