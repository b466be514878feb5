// The package version, read once from package.json (build_info, landing page).
import { readFileSync } from 'node:fs';

export const VERSION: string = (() => {
  for (const rel of ['../../../package.json', '../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      /* try the next layout (dist/src/util or src/util) */
    }
  }
  return 'unknown';
})();
