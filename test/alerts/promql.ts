// Lightweight PromQL helpers for the alert and dashboard tests. They do not validate
// syntax (promtool does that); they find the metric names an expression selects.

const KEYWORDS = new Set([
  'and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring',
  'group_left', 'group_right', 'inf', 'nan', 'atan2', 'start', 'end',
]);

/** Metric names selected by a PromQL expression (vector selectors), sorted, unique. */
export function metricNames(expr: string): string[] {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // string literals
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  s = s.replace(/(^|[^A-Za-z0-9_:.])\d[\d.]*(e[+-]?\d+)?[a-z]*/gi, '$1 '); // numbers, durations
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = s.slice(m.index! + m[0].length);
    if (/^\s*\(/.test(after)) continue; // function or aggregation
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names].sort();
}

/** The metric names inside `{{ ... printf "<promql>" ... | query }}` template calls. */
export function templateQueryMetricNames(template: string): string[] {
  const out = new Set<string>();
  for (const m of template.matchAll(/printf\s+"((?:[^"\\]|\\.)*)"/g)) {
    const promql = (JSON.parse(`"${m[1]}"`) as string).replace(/%[a-z]/g, '"x"');
    for (const n of metricNames(promql)) out.add(n);
  }
  return [...out].sort();
}

/** GitHub's anchor for a Markdown heading. */
export function githubSlug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Anchors of every heading in a Markdown document (plus explicit <a id/name>). */
export function markdownAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) inFence = !inFence;
    if (inFence) continue;
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (h) anchors.add(githubSlug(h[1]!));
    for (const a of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(a[1]!);
  }
  return anchors;
}

/**
 * Substitute Grafana's variables with concrete values so promtool can parse the query (or a
 * live Prometheus can run it). The defaults suit a parse-only check; the end-to-end test
 * passes its real job, instance and a rate interval that fits its scrape interval.
 */
export function substituteGrafanaVariables(
  expr: string,
  values: { job?: string; instance?: string; rateInterval?: string } = {},
): string {
  const { job = 'nixos-desync', instance = 'host-a:9793', rateInterval = '5m' } = values;
  return expr
    .replace(/\$__rate_interval|\$\{__rate_interval\}/g, rateInterval)
    .replace(/\$__interval|\$\{__interval\}/g, '1m')
    .replace(/\$__range|\$\{__range\}/g, '1h')
    .replace(/\$job\b|\$\{job(:[a-z]+)?\}/g, () => job)
    .replace(/\$instance\b|\$\{instance(:[a-z]+)?\}/g, () => instance);
}
