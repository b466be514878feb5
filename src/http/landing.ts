// The landing page: each desync's pin, lag against its budget and the last run at a glance.
// Every value is HTML-escaped (names, revisions and paths come from files on disk).
import type { StatusDoc } from '../views/status.js';
import type { PrDesync } from '../watch/pr-desync.js';
import { formatSeconds } from '../util/duration.js';

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export interface LandingView {
  version: string;
  /**
   * Error excerpts, file paths and collector errors are shown only on a listener that is
   * authenticated or reachable from this host alone (see serve.ts); elsewhere the page says
   * that there are problems, not what they are.
   */
  details: boolean;
  status: StatusDoc;
  pr: PrDesync[] | null;
  collectors: Record<string, string | null>;
  recentRuns: Array<{ at: string; result: string; durationSeconds: number; error: string | null }>;
  runInProgress: boolean;
}

const e = escapeHtml;
const HIDDEN = '(details hidden)';
const HIDDEN_NOTE = 'Error details and file paths are shown only on a loopback-only or authenticated listener; see the exporter and upgrade logs (journalctl), or `nixos-desync status` on the host.';

export function renderLanding(v: LandingView): string {
  const s = v.status;
  const rows = s.desyncs.map((d) => {
    const state = d.breached ? 'BREACHED' : d.revision === null ? 'no pin' : d.inSync ? 'in sync' : 'lagging';
    const cls = d.breached ? 'bad' : d.inSync ? 'ok' : 'warn';
    const lag = `${d.lagRebuilds} / ${d.maxLagRebuilds ?? '∞'}`;
    const behind = `${formatSeconds(d.behindSeconds)}${d.maxBehindSeconds !== null ? ' / ' + formatSeconds(d.maxBehindSeconds) : ''}`;
    const last = d.lastAttempt ? `${d.lastAttempt.result} ${d.lastAttempt.at}` : 'never';
    return `<tr class="${cls}"><td>${e(d.name)}${d.configured ? '' : ' (removed)'}</td><td><code>${e(d.revision ?? '-')}</code></td>` +
      `<td><code>${e(d.path ?? '-')}</code></td><td>${e(lag)}</td><td>${e(behind)}</td><td>${e(last)}</td><td>${e(state)}</td></tr>`;
  });
  const prRows = (v.pr ?? []).map((d) => `<tr class="${d.desyncAge === 0 ? 'ok' : 'warn'}"><td>${e(d.name)}</td><td><code>${e(d.revision)}</code></td>` +
    `<td><code>${e(d.path)}</code></td><td>${d.desyncAge}</td></tr>`);
  const excerpt = (err: string | null | undefined): string => (!err ? '' : v.details ? (err.split('\n')[0] ?? '') : HIDDEN);
  const runs = v.recentRuns.map((r) => `<tr class="${r.result === 'success' ? 'ok' : 'bad'}"><td>${e(r.at)}</td><td>${e(r.result)}</td>` +
    `<td>${e(formatSeconds(r.durationSeconds))}</td><td>${e(excerpt(r.error))}</td></tr>`);
  const sys = s.system;
  const last = s.lastRun;
  const problems = v.details ? [
    ...s.stateProblems.map((p) => `${p.file}: ${p.message}`),
    ...Object.entries(v.collectors).filter(([, err]) => err).map(([c, err]) => `collector ${c}: ${err}`),
  ] : [
    ...(s.stateProblems.length > 0 ? [`${s.stateProblems.length} state problem(s)`] : []),
    ...Object.entries(v.collectors).filter(([, err]) => err).map(([c]) => `collector ${c} is failing`),
  ];
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>nixos-desync exporter</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
tr.ok td:last-child{color:#080}tr.warn td:last-child{color:#a60}tr.bad td:last-child{color:#c00;font-weight:bold}code{font-size:.9em}</style></head>
<body><h1>nixos-desync exporter</h1>
<p>Version ${e(v.version)} · <a href="metrics">Metrics</a> · <a href="healthz">Health</a></p>
<h2>Desyncs</h2>
${rows.length > 0 ? `<table><tr><th>Desync</th><th>Revision</th><th>Path</th><th>Lag (rebuilds / budget)</th><th>Behind / budget</th><th>Last attempt</th><th>State</th></tr>\n${rows.join('\n')}\n</table>` : '<p>No desyncs configured: runs are plain auto-upgrades.</p>'}
${v.pr ? `<h2>Proposal state files (prDesyncDir)</h2>\n<table><tr><th>Desync</th><th>Revision</th><th>Path</th><th>desyncAge</th></tr>\n${prRows.join('\n')}\n</table>` : ''}
<h2>Last run</h2>
<p>${last ? `${e(last.result)} at ${e(last.at)} in ${e(formatSeconds(last.durationSeconds))}${last.error ? ` — ${e(excerpt(last.error))}` : ''}` : 'No run yet.'}${v.runInProgress ? ' <strong>A run is in progress.</strong>' : ''}</p>
<p>Last successful run: ${e(s.lastSuccessfulRunAt ?? 'never')}</p>
${runs.length > 0 ? `<table><tr><th>Started</th><th>Result</th><th>Duration</th><th>Error</th></tr>\n${runs.join('\n')}\n</table>` : ''}
<h2>System</h2>
<p>Generation ${e(String(sys.generation ?? '-'))}${sys.generationTimestamp ? ` (${e(sys.generationTimestamp)})` : ''}, ${sys.generations} generation(s)${sys.activationPending ? ', <strong>activation pending</strong>' : ''}${sys.rebootRequired ? ', <strong>reboot required</strong>' : ''}.</p>
${problems.length > 0 ? `<h2>Problems</h2>\n<ul>${problems.map((p) => `<li>${e(p)}</li>`).join('')}</ul>${v.details ? '' : `\n<p>${HIDDEN_NOTE}</p>`}` : ''}
</body></html>
`;
}
