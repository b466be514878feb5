// HTTP basic auth against bcrypt hashes (exporter-toolkit `basic_auth_users`).
// - An unknown user costs one bcrypt comparison too, against a decoy hash with the highest
//   configured cost, so response times do not reveal which users exist.
// - Results are cached by sha256(per-process salt ‖ user ‖ hash ‖ password), never by the user
//   alone (CVE-2022-46146: a cache keyed on the user let any password in after one success).
//   The cache is an LRU bounded in entries; concurrent requests with the same key share one
//   comparison.
// - Comparisons run one at a time (as in the toolkit): bcrypt is CPU-bound, and a flood of
//   wrong passwords must not multiply it. The in-flight cap in front bounds the queue.
import { createHash, randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';

export type BcryptCompare = (password: string, hash: string) => Promise<boolean>;

export interface BasicAuthOptions {
  users: Map<string, string>;
  /** Defaults to bcryptjs' asynchronous compare (yields to the event loop while it works). */
  compare?: BcryptCompare;
  /** Cached verification results (default 1024). */
  cacheSize?: number;
}

export interface BasicAuthStats {
  comparisons: number;
  cacheHits: number;
  cacheSize: number;
}

export interface BasicAuth {
  /** True when the Authorization header carries a configured user and its password. */
  check(authorization: string | undefined): Promise<boolean>;
  readonly stats: BasicAuthStats;
  /** The hash unknown users are compared against. */
  readonly decoyHash: string;
}

const B64 = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * A hash nobody knows a password for, with the given cost. Comparing against it costs exactly
 * one bcrypt computation at that cost (salt and digest are random), and nothing at start-up.
 */
export function decoyHash(cost: number): string {
  const bytes = randomBytes(53);
  let tail = '';
  for (const b of bytes) tail += B64[b % 64];
  return `$2b$${String(cost).padStart(2, '0')}$${tail}`;
}

/** `Basic base64(user:password)` → [user, password]; anything malformed → null. */
export function parseBasicAuth(header: string | undefined): [string, string] | null {
  if (!header) return null;
  const m = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(header);
  if (!m || m[1]!.length % 4 !== 0) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  if (i < 0) return null;
  return [decoded.slice(0, i), decoded.slice(i + 1)];
}

export function createBasicAuth(opts: BasicAuthOptions): BasicAuth {
  const compare = opts.compare ?? ((pw, hash) => bcrypt.compare(pw, hash));
  const max = opts.cacheSize ?? 1024;
  const salt = randomBytes(32);
  const costs = [...opts.users.values()].map((h) => Number(h.slice(4, 6)));
  const decoy = decoyHash(Math.max(4, ...costs));
  const cache = new Map<string, boolean>(); // insertion order = LRU order
  const pending = new Map<string, Promise<boolean>>();
  const stats: BasicAuthStats = { comparisons: 0, cacheHits: 0, cacheSize: 0 };
  let queue: Promise<unknown> = Promise.resolve();

  const key = (user: string, hash: string, password: string): string => {
    const h = createHash('sha256').update(salt);
    for (const part of [user, hash, password]) {
      const b = Buffer.from(part, 'utf8');
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      h.update(len).update(b); // length-prefixed: ("ab","c") and ("a","bc") never collide
    }
    return h.digest('hex');
  };

  const serialized = (password: string, hash: string): Promise<boolean> => {
    const run = queue.then(() => {
      stats.comparisons += 1;
      return compare(password, hash).catch(() => false);
    });
    queue = run.catch(() => undefined);
    return run;
  };

  return {
    decoyHash: decoy,
    get stats() {
      return { ...stats, cacheSize: cache.size };
    },
    async check(header) {
      const parsed = parseBasicAuth(header);
      if (!parsed) return false;
      const [user, password] = parsed;
      const known = opts.users.get(user);
      const hash = known ?? decoy;
      const k = key(user, hash, password);
      const hit = cache.get(k);
      if (hit !== undefined) {
        stats.cacheHits += 1;
        cache.delete(k);
        cache.set(k, hit);
        return hit && known !== undefined;
      }
      let p = pending.get(k);
      if (!p) {
        p = serialized(password, hash).then((ok) => {
          pending.delete(k);
          cache.set(k, ok);
          while (cache.size > max) cache.delete(cache.keys().next().value!);
          return ok;
        });
        pending.set(k, p);
      }
      const ok = await p;
      return ok && known !== undefined;
    },
  };
}
