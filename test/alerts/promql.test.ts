// The PromQL helpers the rule and dashboard checks rely on: metric names and matchers come
// from the Prometheus parser's syntax tree, and anything it cannot parse is an error.
import { describe, expect, it } from 'vitest';
import { PromQLSyntaxError, metricNames, parsePromQL, selectors, substituteGrafanaVariables, templateQueryMetricNames } from './promql.js';

describe('metricNames', () => {
  it.each([
    ['sum by (job, instance) (rate(a_total{x="y"}[5m])) / on (job) group_left (version) b_info', ['a_total', 'b_info']],
    ['count(c == bool 1) or vector(0)', ['c']],
    ['label_replace(d / e, "budget", "rebuilds", "", "") >= 0.5', ['d', 'e']],
    ['time() - f offset 1h', ['f']],
    ['max_over_time(g[1h:5m]) > 1e3', ['g']],
    ['up == 0 and on (job, instance) nixos_desync:exporter_target:known', ['nixos_desync:exporter_target:known', 'up']],
    ['{__name__="h", job="x"} + {"i"}', ['h', 'i']],
    // Words inside strings, label names and function names are not metrics.
    ['absent(j{label="not_a_metric"}) unless sum without (le) (k)', ['j', 'k']],
  ])('%s → %j', (expr, names) => {
    expect(metricNames(expr)).toEqual(names);
  });

  it('throws a PromQLSyntaxError with the position for an expression Prometheus would reject', () => {
    for (const bad of ['foo{', 'sum(rate(x[5m])', 'a + ', 'rate(x[$__rate_interval])']) {
      expect(() => parsePromQL(bad), bad).toThrow(PromQLSyntaxError);
    }
    try {
      parsePromQL('x{a="b"} +');
      expect.unreachable();
    } catch (e) {
      expect((e as PromQLSyntaxError).code).toBe('PROMQL_SYNTAX');
      expect((e as PromQLSyntaxError).message).toContain('x{a="b"} +');
    }
  });
});

describe('selectors', () => {
  it('lists each selector with its matchers, string values unquoted', () => {
    expect(selectors('a{job=~"$job",instance!="h:1"} / b{x=\'it\\\'s\'}')).toEqual([
      { name: 'a', matchers: [{ label: 'job', op: '=~', value: '$job' }, { label: 'instance', op: '!=', value: 'h:1' }] },
      { name: 'b', matchers: [{ label: 'x', op: '=', value: "it's" }] },
    ]);
  });

  it('finds selectors inside rate() ranges after Grafana variables are filled in', () => {
    const expr = substituteGrafanaVariables('increase(n{job=~"$job"}[$__rate_interval])', { job: '$job' });
    expect(selectors(expr)).toEqual([{ name: 'n', matchers: [{ label: 'job', op: '=~', value: '$job' }] }]);
  });
});

it('templateQueryMetricNames parses the PromQL inside an alert template', () => {
  const t = '{{ with printf "nixos_desync_last_run_success{instance=%q}" .Labels.instance | query }}{{ . | first | value }}{{ end }}';
  expect(templateQueryMetricNames(t)).toEqual(['nixos_desync_last_run_success']);
});
