// flake.lock as data: parsed and validated, one input re-locked at a time, written back in
// the exact format Nix writes (so a lock Nix wrote round-trips byte for byte and the nodes we
// do not change keep their bytes).
import { chown, readFile, stat } from 'node:fs/promises';
import { DesyncError, errorMessage } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsatomic.js';

export type Attrs = Record<string, unknown>;

export interface LockNode {
  locked?: Attrs;
  original?: Attrs;
  /** Input name → node name, or a `follows` path (an array of input names). */
  inputs?: Record<string, string | string[]>;
  flake?: boolean;
  [key: string]: unknown;
}

export interface FlakeLock {
  nodes: Record<string, LockNode>;
  root: string;
  version: number;
  [key: string]: unknown;
}

/** Lock file versions Nix 2.8 and later read and write. */
const SUPPORTED_VERSIONS = new Set([5, 6, 7]);

function lockError(file: string, message: string, cause?: unknown): DesyncError {
  return new DesyncError('E_FLAKE_LOCK', `${file}: ${message}`, { cause, details: { file } });
}

const isObject = (v: unknown): v is Attrs => typeof v === 'object' && v !== null && !Array.isArray(v);

export function parseFlakeLock(text: string, file = 'flake.lock'): FlakeLock {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw lockError(file, `not valid JSON: ${errorMessage(err)}`, err);
  }
  if (!isObject(raw) || !isObject(raw.nodes) || typeof raw.root !== 'string' || typeof raw.version !== 'number') {
    throw lockError(file, 'not a flake lock file (expected "nodes", "root" and "version")');
  }
  if (!SUPPORTED_VERSIONS.has(raw.version)) throw lockError(file, `lock file version ${raw.version} is not supported (5, 6 or 7)`);
  const rootNode = raw.nodes[raw.root];
  if (!isObject(rootNode)) throw lockError(file, `root node ${JSON.stringify(raw.root)} is missing`);
  for (const [name, node] of Object.entries(raw.nodes)) {
    if (!isObject(node)) throw lockError(file, `node ${JSON.stringify(name)} is not an object`);
  }
  return raw as FlakeLock;
}

/** Recursively sorted keys: Nix (nlohmann::json) writes objects with sorted keys. */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (isObject(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  return v;
}

/** The bytes Nix writes for this lock: sorted keys, two-space indent, final newline. */
export function serializeFlakeLock(lock: FlakeLock): string {
  return JSON.stringify(sortKeys(lock), null, 2) + '\n';
}

export type RootInput = { kind: 'node'; node: string; value: LockNode } | { kind: 'follows'; path: string[] } | { kind: 'missing' };

/** What the root flake's input `name` is in the lock: its own node, a `follows`, or absent. */
export function rootInput(lock: FlakeLock, name: string): RootInput {
  const ref = lock.nodes[lock.root]?.inputs?.[name];
  if (ref === undefined) return { kind: 'missing' };
  if (Array.isArray(ref)) return { kind: 'follows', path: ref };
  const value = lock.nodes[ref];
  return value === undefined ? { kind: 'missing' } : { kind: 'node', node: ref, value };
}

/** The root flake's inputs (names), sorted. */
export function rootInputNames(lock: FlakeLock): string[] {
  return Object.keys(lock.nodes[lock.root]?.inputs ?? {}).sort();
}

/** Why `name` cannot be re-locked by the loop, or null when it can. */
export function lockableProblem(lock: FlakeLock, name: string): string | null {
  const r = rootInput(lock, name);
  if (r.kind === 'missing') {
    const known = rootInputNames(lock);
    return `input ${JSON.stringify(name)} is not an input of the flake in its flake.lock (inputs: ${known.length > 0 ? known.join(', ') : 'none'}); add it to flake.nix and run nix flake lock`;
  }
  if (r.kind === 'follows') return `input ${JSON.stringify(name)} follows ${JSON.stringify(r.path.join('/'))}: it must be locked on its own (its own url, no follows)`;
  if (!isObject(r.value.locked) || !isObject(r.value.original)) return `input ${JSON.stringify(name)} has no locked revision in flake.lock; run nix flake lock`;
  if (r.value.inputs !== undefined && Object.keys(r.value.inputs).length > 0) {
    return `input ${JSON.stringify(name)} has inputs of its own (${Object.keys(r.value.inputs).join(', ')}): the loop locks only a nixpkgs without inputs`;
  }
  return null;
}

export interface LockedInfo {
  rev: string | null;
  narHash: string | null;
  lastModified: number | null;
}

export function lockedInfo(locked: Attrs): LockedInfo {
  return {
    rev: typeof locked.rev === 'string' ? locked.rev : null,
    narHash: typeof locked.narHash === 'string' ? locked.narHash : null,
    lastModified: typeof locked.lastModified === 'number' ? locked.lastModified : null,
  };
}

/**
 * A copy of `lock` in which each of `inputs` is locked to `locked` (their `original` stays:
 * it is what flake.nix says). Every other node, and the rest of the file, is unchanged.
 */
export function withInputsLocked(lock: FlakeLock, inputs: readonly string[], locked: Attrs): FlakeLock {
  const next = structuredClone(lock);
  for (const name of inputs) {
    const problem = lockableProblem(lock, name);
    if (problem !== null) throw new DesyncError('E_FLAKE_LOCK', problem);
    const r = rootInput(next, name) as { kind: 'node'; node: string; value: LockNode };
    next.nodes[r.node] = { ...r.value, locked: structuredClone(locked) };
  }
  return next;
}

export interface LockFile {
  file: string;
  bytes: Buffer;
  lock: FlakeLock;
}

export async function readLockFile(file: string): Promise<LockFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw lockError(file, `cannot be read: ${errorMessage(err)}`, err);
  }
  return { file, bytes, lock: parseFlakeLock(bytes.toString('utf8'), file) };
}

/** Replaces `file` atomically with `bytes`, keeping its permission bits and (as root) its owner. */
export async function writeLockFile(file: string, bytes: Buffer | string, failpointName?: string): Promise<void> {
  const before = await stat(file).catch(() => undefined);
  await writeFileAtomic(file, bytes, before ? before.mode & 0o7777 : 0o644, failpointName);
  // A user-owned checkout (e.g. /etc/nixos owned by its admin) stays theirs to edit.
  if (before && process.getuid?.() === 0 && (before.uid !== 0 || before.gid !== 0)) {
    await chown(file, before.uid, before.gid).catch(() => undefined);
  }
}
