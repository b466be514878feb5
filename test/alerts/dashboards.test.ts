// Checks every Grafana dashboard in dashboards/: provisionable structure, data source and
// variables, $__rate_interval, metric names from the contract, and (with promtool) that
// every query parses.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { requireTools } from '../helpers/tools.js';
import { METRIC_NAMES } from './metric-names.js';
import { allPanels, queries, type Json } from './grafana.js';
import { metricNames, parsePromQL, selectors, substituteGrafanaVariables } from './promql.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DIR = path.join(ROOT, 'dashboards');
const DS = { type: 'prometheus', uid: '${datasource}' };
/** The fleet recording rules shipped in alerts/ (dashboards may read them). */
const FLEET_RECORDS = new Set(
  ['alerts/nixos-desync-fleet.rules.yml', 'alerts/nixos-desync-rollout.rules.yml'].flatMap((f) =>
    (parseYaml(readFileSync(path.join(ROOT, f), 'utf8')) as { groups: { rules: { record?: string }[] }[] })
      .groups.flatMap((g) => g.rules.map((r) => r.record).filter((r): r is string => r !== undefined))),
);

/** Stable uids: bookmarks, links between the dashboards and provisioning depend on them. */
const EXPECTED_UIDS: Record<string, string> = {
  'nixos-desync-fleet.json': 'nixos-desync-fleet',
  'nixos-desync-host.json': 'nixos-desync-host',
};

/** A dashboard query as PromQL: Grafana's interval variables filled, $job/$instance kept. */
const promql = (expr: string): string => substituteGrafanaVariables(expr, { job: '$job', instance: '$instance' });

const files = readdirSync(DIR).filter((f) => f.endsWith('.json')).sort();

function hasKeyDeep(x: Json, key: string): boolean {
  if (Array.isArray(x)) return x.some((y) => hasKeyDeep(y, key));
  if (x && typeof x === 'object') return Object.entries(x).some(([k, v]) => k === key || hasKeyDeep(v, key));
  return false;
}

it('the expected dashboards exist', () => {
  expect(files).toEqual(Object.keys(EXPECTED_UIDS).sort());
});

describe.each(files)('dashboard %s', (file) => {
  const text = readFileSync(path.join(DIR, file), 'utf8');
  const d: Json = JSON.parse(text);
  const vars: Json[] = d.templating?.list ?? [];
  const panels = allPanels(d.panels);
  const dataPanels = panels.filter((p) => p.type !== 'row' && p.type !== 'text');

  it('is valid JSON with a stable uid, a title and a schemaVersion', () => {
    expect(d.uid).toBe(EXPECTED_UIDS[file]);
    expect(d.uid).toMatch(/^[A-Za-z0-9_-]{1,40}$/);
    expect(typeof d.title).toBe('string');
    expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
    expect(d.id ?? null).toBeNull();
  });

  it('has no __inputs and no import-time ${DS_...} placeholders', () => {
    expect(hasKeyDeep(d, '__inputs')).toBe(false);
    expect(hasKeyDeep(d, '__requires')).toBe(false);
    expect(text).not.toMatch(/\$\{DS_/);
  });

  it('has a datasource variable of type datasource for prometheus', () => {
    const ds = vars.find((v) => v.name === 'datasource');
    expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });
  });

  it.each(['job', 'instance'])('has a %s query variable using label_values on ${datasource}', (name) => {
    const v = vars.find((x) => x.name === name);
    expect(v).toBeDefined();
    expect(v.type).toBe('query');
    expect(v.datasource).toEqual(DS);
    const q: string = typeof v.query === 'string' ? v.query : v.query.query;
    expect(q).toMatch(new RegExp(`^label_values\\(.*,\\s*${name}\\)$`));
    if (name === 'instance') expect(q).toContain('$job');
  });

  it('has panels, with unique ids, each with a gridPos', () => {
    expect(dataPanels.length).toBeGreaterThan(3);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of panels) expect(p.gridPos, p.title).toMatchObject({ h: expect.any(Number), w: expect.any(Number) });
  });

  it('every panel and every query uses the ${datasource} variable', () => {
    for (const p of dataPanels) {
      expect(p.datasource, `panel "${p.title}"`).toEqual(DS);
      expect(p.targets?.length, `panel "${p.title}" has queries`).toBeGreaterThan(0);
      for (const t of p.targets) expect(t.datasource ?? DS, `panel "${p.title}" ${t.refId}`).toEqual(DS);
    }
  });

  it('every query parses with the Prometheus parser (Grafana variables filled in)', () => {
    for (const q of queries(d)) expect(() => parsePromQL(promql(q.expr)), q.where).not.toThrow();
  });

  it('every selector of every panel query filters on $job and $instance (recording rules per job: on $job)', () => {
    for (const p of dataPanels) {
      for (const t of p.targets) {
        const sels = selectors(promql(t.expr));
        expect(sels.length, `panel "${p.title}" ${t.refId}`).toBeGreaterThan(0);
        for (const s of sels) {
          if (s.name.startsWith('job:')) {
            expect(FLEET_RECORDS.has(s.name), `panel "${p.title}" reads unknown recording rule ${s.name}`).toBe(true);
            expect(s.matchers, `panel "${p.title}" ${t.refId} ${s.name}`).toEqual(expect.arrayContaining([{ label: 'job', op: '=~', value: '$job' }]));
            continue;
          }
          expect(s.matchers, `panel "${p.title}" ${t.refId} ${s.name}`).toEqual(expect.arrayContaining([
            { label: 'job', op: '=~', value: '$job' },
            { label: 'instance', op: '=~', value: '$instance' },
          ]));
        }
      }
    }
  });

  it('rate(), irate() and increase() use $__rate_interval', () => {
    let seen = 0;
    for (const q of queries(d)) {
      if (!/\b(rate|irate|increase)\s*\(/.test(q.expr)) continue;
      const ranges = [...q.expr.matchAll(/\[([^\]]*)\]/g)].map((m) => m[1]);
      expect(ranges.length, q.where).toBeGreaterThan(0);
      for (const r of ranges) expect(r, q.where).toBe('$__rate_interval');
      seen++;
    }
    expect(seen).toBeGreaterThan(0);
  });

  it('only uses metric names from the contract, `up` and the shipped fleet recording rules', () => {
    const known = new Set([...METRIC_NAMES, ...FLEET_RECORDS, 'up']);
    for (const q of queries(d)) {
      const used = metricNames(promql(q.expr));
      expect(used.length, q.where).toBeGreaterThan(0);
      for (const m of used) expect(known.has(m), `${q.where} uses unknown metric ${m}`).toBe(true);
    }
  });
});

describe.skipIf(!requireTools('promtool'))('dashboard queries parse (promtool check rules)', () => {
  const tmp = mkdtempSync(path.join(tmpdir(), 'nixos-desync-dashboards-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it.each(files)('%s', (file) => {
    const d: Json = JSON.parse(readFileSync(path.join(DIR, file), 'utf8'));
    const qs = queries(d);
    const lines = ['groups:', '  - name: dashboard-queries', '    rules:'];
    qs.forEach((q, i) => {
      const expr = substituteGrafanaVariables(q.expr);
      expect(expr, q.where).not.toContain('$');
      lines.push(`      - record: dashboard:query_${i}`, `        expr: ${JSON.stringify(expr)}`);
    });
    const rulesFile = path.join(tmp, file.replace(/\.json$/, '.rules.yml'));
    writeFileSync(rulesFile, lines.join('\n') + '\n');
    const r = spawnSync('promtool', ['check', 'rules', rulesFile], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain(`SUCCESS: ${qs.length} rules found`);
  });
});
