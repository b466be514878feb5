// Grafana dashboard helpers shared by the dashboard checks and the end-to-end test.

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Json = any;

/** Every panel, rows' nested panels included. */
export function allPanels(panels: Json[] = []): Json[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels)]);
}

export interface Query { where: string; expr: string }

/** Every PromQL expression: panel targets, and the selector inside label_values() variables. */
export function queries(d: Json): Query[] {
  const out: Query[] = [];
  for (const p of allPanels(d.panels)) {
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
  }
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const q: string = typeof v.query === 'string' ? v.query : v.query.query;
    const m = /^label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)$/.exec(q.trim());
    out.push({ where: `variable ${v.name}`, expr: m ? m[1]! : q });
  }
  return out;
}
