// PromQL helpers for the alert and dashboard tests, on the Prometheus project's own parser
// (@prometheus-io/lezer-promql, the grammar behind Prometheus' query editor): every rule and
// dashboard expression is parsed for real, and metric names come from its syntax tree.
import { parser } from '@prometheus-io/lezer-promql';

/** A node of the parser's syntax tree. */
type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

/** A parse error with the expression and where in it the parser gave up. */
export class PromQLSyntaxError extends Error {
  readonly code = 'PROMQL_SYNTAX';
  constructor(readonly expr: string, readonly at: number) {
    super(`PromQL syntax error at ${at}: ${expr.slice(0, at)} ⚠ ${expr.slice(at)}`);
  }
}

/** A selector: its metric name (null for `{…}` without one) and its label matchers. */
export interface Selector {
  name: string | null;
  matchers: { label: string; op: string; value: string }[];
}

/** The value of a PromQL string literal ("…" and '…' with Go escapes, `…` raw). */
function unquote(lit: string): string {
  if (lit.startsWith('`')) return lit.slice(1, -1);
  const body = lit.slice(1, -1);
  return JSON.parse(`"${lit.startsWith("'") ? body.replace(/\\'/g, "'").replace(/"/g, '\\"') : body}"`) as string;
}

/** Parse an expression; throws PromQLSyntaxError if the parser had to recover anywhere. */
export function parsePromQL(expr: string): SyntaxNode {
  const tree = parser.parse(expr);
  let errorAt = -1;
  tree.iterate({
    enter: (n) => {
      if (errorAt < 0 && n.type.isError) errorAt = n.from;
    },
  });
  if (errorAt >= 0) throw new PromQLSyntaxError(expr, errorAt);
  return tree.topNode;
}

/** Every vector selector of an expression (matrix selectors and subqueries included). */
export function selectors(expr: string): Selector[] {
  const out: Selector[] = [];
  const text = (n: SyntaxNode): string => expr.slice(n.from, n.to);
  parsePromQL(expr).cursor().iterate((ref) => {
    if (ref.name !== 'VectorSelector') return;
    const node = ref.node;
    const id = node.getChild('Identifier');
    const sel: Selector = { name: id ? text(id) : null, matchers: [] };
    for (const m of node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []) {
      const op = m.getChild('MatchOp')!;
      sel.matchers.push({ label: text(m.getChild('LabelName')!), op: text(op), value: unquote(text(m.getChild('StringLiteral')!)) });
    }
    for (const m of node.getChild('LabelMatchers')?.getChildren('QuotedLabelMatcher') ?? []) {
      const [label, value] = m.getChildren('StringLiteral').map((s) => unquote(text(s)));
      sel.matchers.push({ label: label!, op: text(m.getChild('MatchOp')!), value: value! });
    }
    // Prometheus 3's `{"metric_name", …}`: a quoted name on its own.
    const quoted = node.getChild('LabelMatchers')?.getChild('QuotedLabelName')?.getChild('StringLiteral');
    if (quoted) sel.name = unquote(text(quoted));
    const byLabel = sel.matchers.find((m) => m.label === '__name__' && m.op === '=');
    if (!sel.name && byLabel) sel.name = byLabel.value;
    out.push(sel);
    return false;
  });
  return out;
}

/** Metric names selected by a PromQL expression (vector selectors), sorted, unique. */
export function metricNames(expr: string): string[] {
  return [...new Set(selectors(expr).flatMap((s) => (s.name ? [s.name] : [])))].sort();
}

/** The metric names inside `{{ ... printf "<promql>" ... | query }}` template calls. */
export function templateQueryMetricNames(template: string): string[] {
  const out = new Set<string>();
  // The Go template around the query is not PromQL: take printf's format string, fill its
  // verbs with a string, and parse that.
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
