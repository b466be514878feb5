#!/usr/bin/env node
// Markdown tables from a bench/fleet/run.mjs JSON (what docs/benchmarks.md "Fleet" shows).
//   node bench/fleet/report.mjs bench/results/fleet.json
import { readFileSync } from 'node:fs';

const r = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const mb = (b) => (b === undefined || b === null || Number.isNaN(b) ? '—' : `${Math.round(b / 1e6)} MB`);
const ms = (x) => (x === undefined ? '—' : x >= 100 ? `${Math.round(x)}` : x.toFixed(1));
const out = [];
out.push(`Run ${r.at} · ${r.cores} cores · ${r.cpu} · load ${r.loadBefore.map((x) => x.toFixed(1)).join(' ')} → ${r.loadAfter.map((x) => x.toFixed(1)).join(' ')}`, '');
if (r.sizes.length) {
  out.push('**Blocks** (synthetic history → `promtool tsdb create-blocks-from openmetrics` → Prometheus on those blocks):', '');
  out.push('| Hosts × desyncs | Series (per host) | Samples | Blocks on disk | Prometheus RSS: ready / after rules / after all queries / peak | Fleet rule group | Alert rule group |');
  out.push('|---|---|---|---|---|---|---|');
  for (const s of r.sizes) {
    const g = (n) => s.ruleGroups.find((x) => x.name === n);
    out.push(`| ${s.hosts} × ${s.desyncs} | ${s.seriesCounted} (${s.seriesPerHost}) | ${(s.samples / 1e6).toFixed(1)} M | ${mb(s.tsdbBytes)} | ${mb(s.rssReadyBytes)} / ${mb(s.rssAfterRulesBytes)} / ${mb(s.rssAfterQueriesBytes)} / ${mb(s.rssPeakBytes)} | ${ms(g('nixos-desync-fleet').evaluationSeconds * 1000)} ms | ${ms(g('nixos-desync').evaluationSeconds * 1000)} ms |`);
  }
  out.push('');
  const sizes = r.sizes;
  out.push(`Latency of every fleet dashboard query (median of the runs, ms; \`$job\`/\`$instance\` = all; range queries over 3 h at a 60 s step):`, '');
  out.push(`| Panel | Query | ${sizes.map((s) => `${s.hosts} hosts`).join(' | ')} |`);
  out.push(`|---|---|${sizes.map(() => '---').join('|')}|`);
  sizes[0].dashboard.forEach((q, i) => {
    out.push(`| ${q.panel}${q.range ? ' (range)' : ''} | \`${q.expr.length > 70 ? q.expr.slice(0, 67) + '…' : q.expr}\` | ${sizes.map((s) => ms(s.dashboard[i]?.medianMs)).join(' | ')} |`);
  });
  out.push('');
  out.push('Latency of every rule, run as an instant query (median ms):', '');
  out.push(`| Rule | ${sizes.map((s) => `${s.hosts} hosts`).join(' | ')} |`);
  out.push(`|---|${sizes.map(() => '---').join('|')}|`);
  sizes[0].rules.forEach((q, i) => out.push(`| \`${q.name}\` | ${sizes.map((s) => ms(s.rules[i]?.medianMs)).join(' | ')} |`));
  out.push('');
}
if (r.head?.length) {
  out.push('**Head** (the same fleet as one live scrape every 15 s into an empty Prometheus, `honor_labels`):', '');
  out.push('| Hosts × desyncs | Head series | Exposition per scrape | Scrape duration | Prometheus RSS (peak) | Go heap in use | Fleet rule group | Alert rule group | Slowest dashboard query |');
  out.push('|---|---|---|---|---|---|---|---|---|');
  for (const h of r.head) {
    const g = (n) => h.ruleGroups.find((x) => x.name === n);
    const worst = [...h.dashboard].sort((x, y) => y.medianMs - x.medianMs)[0];
    out.push(`| ${h.hosts} × ${h.desyncs} | ${h.headSeries ?? '—'} | ${mb(h.expositionBytes)} | ${h.scrapeSeconds?.toFixed(2)} s | ${mb(h.rssBytes)} (${mb(h.rssPeakBytes)}) | ${mb(h.goHeapInuseBytes)} | ${ms(g('nixos-desync-fleet').evaluationSeconds * 1000)} ms | ${ms(g('nixos-desync').evaluationSeconds * 1000)} ms | ${ms(worst.medianMs)} ms (${worst.panel}) |`);
  }
  out.push('');
}
process.stdout.write(out.join('\n') + '\n');
