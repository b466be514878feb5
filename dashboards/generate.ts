// Writes dashboards/*.json from the builders in this directory: `npm run dashboards`.
// The committed JSON is what users import or provision; test/dashboards/generated.test.ts
// fails when it differs from what this produces, so edit the .ts files, never the JSON.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { fleetDashboard } from './fleet.js';
import { hostDashboard } from './host.js';

/** File name in dashboards/ → its dashboard. */
export const DASHBOARDS = {
  'nixos-desync-fleet.json': fleetDashboard,
  'nixos-desync-host.json': hostDashboard,
} as const;

/** The exact text of each dashboard file (2-space JSON, trailing newline). */
export function renderDashboards(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(DASHBOARDS).map(([file, build]) => [file, JSON.stringify(build(), null, 2) + '\n']),
  );
}

/** `node dist/dashboards/generate.js [dir]`: write every dashboard into dir (default ./dashboards). */
function main(argv: string[]): void {
  const dir = path.resolve(argv[0] ?? 'dashboards');
  for (const [file, text] of Object.entries(renderDashboards())) {
    writeFileSync(path.join(dir, file), text);
    console.log(`wrote ${path.join(dir, file)}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
