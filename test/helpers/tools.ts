// Real-tool suites skip on a laptop without the tool, but in CI a missing tool is a failure.
import { spawnSync } from 'node:child_process';

export function hasTool(name: string): boolean {
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', name], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * Returns true when every tool is present. When one is missing: throws under CI (so the
 * suite fails), otherwise returns false so the caller can `describe.skipIf(!ok)`.
 */
export function requireTools(...names: string[]): boolean {
  const missing = names.filter((n) => !hasTool(n));
  if (missing.length === 0) return true;
  if (process.env.CI) {
    throw new Error(`CI is set but required tools are missing: ${missing.join(', ')}`);
  }
  return false;
}
