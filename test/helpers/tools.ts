// Real-tool suites skip on a laptop without the tool, but in CI a missing tool is a failure:
// every test that needs a tool asks `requireTools` (never `hasTool` alone), so a tool missing
// in CI fails the run instead of skipping silently. `.ci/run` sets CI.
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** True when `name` is an executable file on PATH (looked up directly, no shell). */
export function hasTool(name: string, path = process.env.PATH ?? ''): boolean {
  if (name.includes('/')) return false;
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, name);
    try {
      if (!statSync(p).isFile()) continue;
      accessSync(p, constants.X_OK);
      return true;
    } catch {
      // not here; next PATH entry
    }
  }
  return false;
}

/** Under CI (any non-empty value but "0"/"false"), a skip for a missing tool is not allowed. */
export function inCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.CI;
  return v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/**
 * Returns true when every tool is present. When one is missing: throws under CI (so the
 * suite fails), otherwise returns false so the caller can `describe.skipIf(!ok)` (the skip
 * shows in the totals of scripts/test.sh: "N passed, N failed, N skipped").
 */
export function requireTools(...names: string[]): boolean {
  return requireToolsIn(process.env, ...names);
}

export function requireToolsIn(env: NodeJS.ProcessEnv, ...names: string[]): boolean {
  const missing = names.filter((n) => !hasTool(n, env.PATH ?? ''));
  if (missing.length === 0) return true;
  if (inCi(env)) {
    throw new Error(`CI is set but required tools are missing: ${missing.join(', ')}`);
  }
  return false;
}
