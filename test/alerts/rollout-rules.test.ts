// The rollout recording rules and the hosts' query: parsed with Prometheus' parser, only known
// metrics, every rule unit-tested, and the promtool test runs the hosts' exact query (the copies
// in alerts/tests/rollout-recording.yml equal what src/rollout/fleet.ts generates).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { rolloutQuery } from '../../src/rollout/fleet.js';
import { METRIC_NAMES } from './metric-names.js';
import { metricNames, parsePromQL } from './promql.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const rules = (parseYaml(readFileSync(path.join(ROOT, 'alerts/nixos-desync-rollout.rules.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ record?: string; alert?: string; expr: string }> }> })
  .groups.flatMap((g) => g.rules);
const tests = parseYaml(readFileSync(path.join(ROOT, 'alerts/tests/rollout-recording.yml'), 'utf8')) as { tests: Array<{ promql_expr_test: Array<{ expr: string }> }> };
const testedExprs = tests.tests.flatMap((t) => t.promql_expr_test.map((p) => p.expr));
// Exported by the verified-system work (DESIGN.md "Runs"); an absent series leaves `unless` a no-op.
const UNVERIFIED = 'nixos_desync_system_unverified';

describe('rollout recording rules', () => {
  const names = rules.map((r) => r.record!);

  it('are recording rules named by the level:metric:operations convention', () => {
    expect(rules.every((r) => r.record !== undefined && r.alert === undefined)).toBe(true);
    for (const n of names) expect(n).toMatch(/^(nixos_desync:rollout_healthy_seconds|(ring|ring_revision|ring_reason|revision):nixos_desync_[a-z_]+:count)$/);
  });

  it('parse, and use only known metrics and their own records', () => {
    const known = new Set([...METRIC_NAMES, ...names, UNVERIFIED]);
    for (const r of rules) {
      parsePromQL(r.expr);
      for (const m of metricNames(r.expr)) expect(known.has(m), `${r.record} uses ${m}`).toBe(true);
    }
  });

  it('are each unit-tested in alerts/tests/rollout-recording.yml', () => {
    for (const n of names) expect(testedExprs.some((e) => e.includes(n)), n).toBe(true);
  });

  it('the promtool test runs exactly the query the hosts send (ring 1 and ring 0)', () => {
    for (const [ring, revision] of [[1, 'r1'], [1, 'r2'], [0, 'r2']] as const) {
      expect(testedExprs, `ring ${ring} ${revision}`).toContain(rolloutQuery({ ring, soak: '6h' }, revision));
    }
  });

  it("the hosts' query inlines the recorded expression (so hosts need no rule)", () => {
    const recorded = rules.find((r) => r.record === 'nixos_desync:rollout_healthy_seconds')!.expr.replace(/\s+/g, ' ').trim();
    const q = rolloutQuery({ ring: 2, soak: '1h' }, 'abc');
    parsePromQL(q);
    const inlined = recorded
      .replace('nixos_desync_rollout_healthy_since_timestamp_seconds', 'nixos_desync_rollout_healthy_since_timestamp_seconds{revision="abc"}')
      .replace('group_left (ring) nixos_desync_rollout_info', 'group_left (ring) nixos_desync_rollout_info{ring="1"}');
    expect(q.replace(/\s+/g, ' ')).toContain(`count((${inlined}) >= 3600)`);
  });
});
