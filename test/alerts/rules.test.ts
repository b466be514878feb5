// Checks the shipped alert rules, their promtool unit tests, the runbooks they link to and
// the example Prometheus/Alertmanager configs, with the real promtool and amtool.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { requireTools } from '../helpers/tools.js';
import { METRIC_NAMES } from './metric-names.js';
import { markdownAnchors, metricNames, parsePromQL, selectors, templateQueryMetricNames } from './promql.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RULES = path.join(ROOT, 'alerts/nixos-desync.rules.yml');
const FLEET_RULES = path.join(ROOT, 'alerts/nixos-desync-fleet.rules.yml');
const RULE_TESTS_DIR = path.join(ROOT, 'alerts/tests');
const PROM_EXAMPLE = path.join(ROOT, 'alerts/examples/prometheus.yml');
const ABSENT_EXAMPLE = path.join(ROOT, 'alerts/examples/exporter-absent.rules.yml');
const AM_EXAMPLE = path.join(ROOT, 'alerts/examples/alertmanager.yml');
const RUNBOOKS = path.join(ROOT, 'docs/runbooks.md');
const RUNBOOK_BASE = 'https://nixos-desync.invalid/docs/runbooks.md';

/** The alert names of the contract (fixed) and the severities we ship. */
const ALERTS: Record<string, string> = {
  NixosDesyncMaxAgeBreached: 'critical',
  NixosDesyncLagging: 'warning',
  NixosDesyncUpgradeFailing: 'warning',
  NixosDesyncUpgradeStale: 'warning',
  NixosDesyncRebootRequired: 'info',
  NixosDesyncCollectorFailing: 'warning',
  NixosDesyncExporterDown: 'warning',
  NixosDesyncNixpkgsOutOfDate: 'warning',
  NixosDesyncFlakeInputOutOfDate: 'warning',
  NixosDesyncRolledBack: 'warning',
  NixosDesyncRollbackFailed: 'critical',
  NixosDesyncUnverifiedSystem: 'critical',
  NixosDesyncRolloutHeld: 'warning',
  NixosDesyncRebootOverdue: 'warning',
};

interface AlertRule {
  alert: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function loadAll(file = RULES): AlertRule[] {
  const doc = parseYaml(readFileSync(file, 'utf8')) as { groups: { name: string; rules: AlertRule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}
/** Alerting rules only (the file also has recording rules, which have `record`). */
const loadRules = (file = RULES): AlertRule[] => loadAll(file).filter((r) => r.alert !== undefined);
/** The recording rules the alerts rely on. */
const RECORDS = ['nixos_desync:exporter_target:known'];

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

const ruleTestFiles = readdirSync(RULE_TESTS_DIR)
  .filter((f) => f.endsWith('.yml') || f.endsWith('.yaml'))
  .sort()
  .map((f) => path.join(RULE_TESTS_DIR, f));

/** Metrics of the contract that the loop's rollback work exports (DESIGN.md "Runs"). */
const ROLLBACK_METRICS = ['nixos_desync_last_rollback_timestamp_seconds', 'nixos_desync_rollbacks_total'];

describe('fleet recording rules (static)', () => {
  const rules = loadAll(FLEET_RULES);
  const names = rules.map((r) => r.record!);

  it('are recording rules only, named job:/fleet:/instance: … :count (and one ratio) by the level:metric:operations convention', () => {
    expect(rules.every((r) => r.record !== undefined && r.alert === undefined)).toBe(true);
    for (const n of names) expect(n).toMatch(/^((job|fleet|instance):nixos_desync_[a-z_]+:count|nixos_desync:budget_used:ratio)$/);
    expect(new Set(names).size).toBe(names.length);
  });

  it('cover breached, lagging, failing, stale, rolled back and out-of-date hosts, per job and fleet-wide', () => {
    for (const what of ['hosts', 'hosts_breached', 'hosts_lagging', 'hosts_failing', 'hosts_stale', 'hosts_rolled_back', 'hosts_out_of_date', 'hosts_reboot_required', 'exporters_down', 'desyncs_breached', 'desyncs_lagging']) {
      expect(names, what).toContain(`job:nixos_desync_${what}:count`);
      expect(names, what).toContain(`fleet:nixos_desync_${what}:count`);
    }
  });

  it('per-job rules aggregate by job, per-instance ones by job and instance, and every fleet rule sums its per-job rule', () => {
    for (const r of rules) {
      const level = r.record!.split(':')[0];
      if (level === 'fleet') expect(r.expr.trim()).toBe(`sum(${r.record!.replace(/^fleet:/, 'job:')})`);
      else if (level === 'job') expect(r.expr).toMatch(/^(count|sum) by \(job\)/);
      else if (level === 'instance') expect(r.expr).toMatch(/^count by \(job, instance\)/);
    }
  });

  it('use only contract metric names, the recording rules of nixos-desync.rules.yml and their own', () => {
    const known = new Set([...METRIC_NAMES, ...ROLLBACK_METRICS, ...RECORDS, ...names, 'up']);
    for (const r of rules) for (const m of metricNames(r.expr)) expect(known.has(m), `${r.record} uses unknown metric ${m}`).toBe(true);
  });

  it('have promtool tests for every rule', () => {
    const tested = readFileSync(path.join(RULE_TESTS_DIR, 'fleet-recording.yml'), 'utf8');
    for (const n of names) expect(tested, n).toContain(n);
  });
});

describe('alert rules (static)', () => {
  const rules = loadRules();
  const byName = new Map(rules.map((r) => [r.alert, r]));

  it('ships exactly the contract alerts (and the flake-input one), once each, plus the recording rules they use', () => {
    expect(rules.map((r) => r.alert).sort()).toEqual(Object.keys(ALERTS).sort());
    expect(loadAll().filter((r) => r.record !== undefined).map((r) => r.record)).toEqual(RECORDS);
  });

  it.each(Object.entries(ALERTS))('%s has severity %s, an explicit for:, and all annotations', (name, severity) => {
    const r = byName.get(name)!;
    expect(r.labels?.severity).toBe(severity);
    expect(r.for).toMatch(/^\d+[smhdwy]$/);
    for (const key of ['summary', 'description', 'runbook_url']) {
      expect(r.annotations?.[key], `${name}.${key}`).toBeTruthy();
    }
    // Labels must not overwrite the ones that identify the host and the desync.
    for (const reserved of ['desync', 'instance', 'job']) expect(r.labels ?? {}).not.toHaveProperty(reserved);
  });

  it.each(Object.keys(ALERTS))('%s links to its runbook section, which exists', (name) => {
    const r = byName.get(name)!;
    const url = r.annotations!.runbook_url!;
    expect(url).toBe(`${RUNBOOK_BASE}#${name.toLowerCase()}`);
    const anchors = markdownAnchors(readFileSync(RUNBOOKS, 'utf8'));
    expect([...anchors]).toContain(name.toLowerCase());
  });

  it('only uses contract metric names (and `up`) in expressions and annotation queries', () => {
    const known = new Set([...METRIC_NAMES, ...RECORDS, 'up']);
    for (const r of rules) {
      const used = [...metricNames(r.expr), ...Object.values(r.annotations ?? {}).flatMap(templateQueryMetricNames)];
      expect(used.length, r.alert).toBeGreaterThan(0);
      for (const m of used) expect(known.has(m), `${r.alert} uses unknown metric ${m}`).toBe(true);
    }
  });

  it.each([RULES, ABSENT_EXAMPLE])('every expression in %s parses with the Prometheus parser', (file) => {
    const all = loadAll(file);
    expect(all.length).toBeGreaterThan(0);
    for (const r of all) expect(() => parsePromQL(r.expr), r.alert ?? r.record).not.toThrow();
  });

  it('no shipped rule names a scrape job (ExporterDown works whatever the job is called)', () => {
    for (const r of loadAll()) {
      const matchers = selectors(r.expr).flatMap((s) => s.matchers);
      expect(matchers.filter((m) => m.label === 'job'), r.alert ?? r.record).toEqual([]);
      const text = Object.values(r.annotations ?? {}).join('\n');
      expect([...text.matchAll(/\bjob\s*(=~|!=|!~|=)\s*"/g)], r.alert ?? r.record).toEqual([]);
    }
    // Never a bare `up == 0`: only targets that served nixos-desync metrics count.
    expect(byName.get('NixosDesyncExporterDown')!.expr).toMatch(/up == 0\s+and on \(job, instance\)/);
  });

  it('the optional absent() rule is a separate file, same alert name, and names the example job', () => {
    const absent = loadRules(ABSENT_EXAMPLE);
    expect(absent.map((r) => r.alert)).toEqual(['NixosDesyncExporterDown']);
    expect(absent[0]!.expr).toMatch(/^absent\(up\{job="nixos-desync"\}\)/);
    expect(absent[0]!.annotations?.runbook_url).toBe(`${RUNBOOK_BASE}#nixosdesyncexporterdown`);
    expect(readFileSync(PROM_EXAMPLE, 'utf8')).toMatch(/job_name:\s*"?nixos-desync"?\s*$/m);
  });

  it('NixosDesyncLagging is computed from the exported budgets, not from thresholds per host', () => {
    const expr = byName.get('NixosDesyncLagging')!.expr;
    expect(metricNames(expr)).toEqual(expect.arrayContaining([
      'nixos_desync_lag_rebuilds', 'nixos_desync_max_lag_rebuilds',
      'nixos_desync_behind_seconds', 'nixos_desync_max_behind_seconds',
    ]));
    // No matcher picks hosts or desyncs: the budgets come from the exported series.
    expect(selectors(expr).flatMap((s) => s.matchers)).toEqual([]);
  });

  it('every alert has promtool unit tests where it fires and where it must not', () => {
    const texts = ruleTestFiles.map((f) => readFileSync(f, 'utf8'));
    for (const name of Object.keys(ALERTS)) {
      const firing = new RegExp(`alertname: ${name}\\s*\\n\\s*exp_alerts:\\s*\\n\\s*- exp_labels:`);
      const silent = new RegExp(`alertname: ${name}\\s*\\n\\s*exp_alerts: \\[\\]`);
      expect(texts.some((t) => firing.test(t)), `${name}: a firing case`).toBe(true);
      expect(texts.some((t) => silent.test(t)), `${name}: a non-firing case`).toBe(true);
      expect(texts.some((t) => t.includes(`#${name.toLowerCase()}`)), `${name}: annotations checked`).toBe(true);
    }
  });
});

describe.skipIf(!requireTools('promtool', 'amtool'))('alert rules and example configs (promtool, amtool)', () => {
  it('promtool check rules accepts the fleet recording rules', () => {
    const r = run('promtool', ['check', 'rules', FLEET_RULES]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`SUCCESS: ${loadAll(FLEET_RULES).length} rules found`);
  });

  it('promtool check rules accepts the rule files and finds the same rules', () => {
    const r = run('promtool', ['check', 'rules', RULES]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain(`SUCCESS: ${Object.keys(ALERTS).length + RECORDS.length} rules found`);
    const a = run('promtool', ['check', 'rules', ABSENT_EXAMPLE]);
    expect(a.status, a.out).toBe(0);
  });

  it('promtool test rules passes on every file in alerts/tests', () => {
    expect(ruleTestFiles.length).toBeGreaterThan(0);
    const r = run('promtool', ['test', 'rules', ...ruleTestFiles]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).not.toContain('FAILED');
  }, 150_000);

  it('promtool check config accepts the example Prometheus config and its rule file', () => {
    const r = run('promtool', ['check', 'config', PROM_EXAMPLE]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain('SUCCESS: 4 rule files found');
    expect(r.out).toContain(`SUCCESS: ${Object.keys(ALERTS).length + RECORDS.length} rules found`);
    expect(r.out).toContain(`SUCCESS: ${loadAll(FLEET_RULES).length} rules found`);
    expect(r.out).toContain('SUCCESS: 1 rules found');
  });

  it('amtool check-config accepts the example Alertmanager config', () => {
    const r = run('amtool', ['check-config', AM_EXAMPLE]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain('SUCCESS');
  });

  it('every route of the example Alertmanager config groups per host (job, instance)', () => {
    interface Route { group_by?: string[]; routes?: Route[] }
    const root = (parseYaml(readFileSync(AM_EXAMPLE, 'utf8')) as { route: Route }).route;
    const walk = (r: Route, inherited: string[] | undefined): string[][] =>
      [r.group_by ?? inherited ?? [], ...(r.routes ?? []).flatMap((c) => walk(c, r.group_by ?? inherited))];
    for (const g of walk(root, undefined)) expect(g).toEqual(['job', 'instance']);
    // amtool sees the same tree (and would reject an invalid one).
    const r = run('amtool', ['config', 'routes', `--config.file=${AM_EXAMPLE}`]);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toMatch(/severity="critical"\}\s+receiver: pager/);
  });

  const routes: [string, string, string[]][] = [
    ['a breach pages', 'pager', ['alertname=NixosDesyncMaxAgeBreached', 'severity=critical', 'desync=synapse', 'instance=host-a:9793']],
    ['a lagging desync goes to chat', 'team-chat', ['alertname=NixosDesyncLagging', 'severity=warning', 'desync=synapse', 'instance=host-a:9793']],
    ['a reboot reminder goes to chat', 'team-chat', ['alertname=NixosDesyncRebootRequired', 'severity=info', 'instance=host-a:9793']],
  ];
  it.each(routes)('amtool routes test: %s', (_what, receiver, labels) => {
    const r = run('amtool', ['config', 'routes', 'test', `--config.file=${AM_EXAMPLE}`, `--verify.receivers=${receiver}`, ...labels]);
    expect(r.status, r.out).toBe(0);
  });

  it('amtool routes test: a warning does not page', () => {
    const r = run('amtool', ['config', 'routes', 'test', `--config.file=${AM_EXAMPLE}`, '--verify.receivers=pager',
      'alertname=NixosDesyncLagging', 'severity=warning']);
    expect(r.status, r.out).not.toBe(0);
  });
});
