// The dashboards in dashboards/*.json are generated from dashboards/*.ts (Grafana's Foundation
// SDK). Users import or provision the JSON, so it must be exactly what the code produces.
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DASHBOARDS, renderDashboards } from '../../dashboards/generate.js';

const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dashboards');

describe('generated dashboards', () => {
  const generated = renderDashboards();

  it('every committed dashboard JSON has a generator and every generator a committed file', () => {
    const committed = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();
    expect(committed).toEqual(Object.keys(DASHBOARDS).sort());
  });

  it.each(Object.keys(DASHBOARDS))('%s is what `npm run dashboards` writes (run it after editing dashboards/*.ts)', (file) => {
    const committed = readFileSync(path.join(DIR, file), 'utf8');
    // Compare parsed first for a readable diff, then the exact text (formatting included).
    expect(JSON.parse(committed)).toEqual(JSON.parse(generated[file]!));
    expect(committed).toBe(generated[file]);
  });

  it('panel ids are 1..n in order, so links to a panel (viewPanel=N) survive edits', () => {
    for (const file of Object.keys(DASHBOARDS)) {
      const d = JSON.parse(generated[file]!);
      expect(d.panels.map((p: { id: number }) => p.id)).toEqual(d.panels.map((_: unknown, i: number) => i + 1));
    }
  });

  it('header links stay in the header (no SDK default placement in the controls menu)', () => {
    for (const file of Object.keys(DASHBOARDS)) {
      const d = JSON.parse(generated[file]!);
      expect(d.links.length).toBeGreaterThan(0);
      for (const l of d.links) expect(l).not.toHaveProperty('placement');
    }
  });
});
