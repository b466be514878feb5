// What one scrape is sent as: the Prometheus text format 0.0.4 unless the scraper asks for
// OpenMetrics in its Accept header (as client_golang's expfmt.Negotiate decides), gzip-compressed
// when its Accept-Encoding allows gzip. The registry renders text 0.0.4 only (prom-client
// renames counters for good once a registry renders OpenMetrics); OpenMetrics is converted
// from that text here.

export type ExpositionFormat = 'text' | 'openmetrics';

export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

interface MediaRange { type: string; params: Record<string, string>; q: number }

/** An Accept-style header → its entries with parameters and q (q defaults to 1; bad q = 0). */
function parseList(header: string): MediaRange[] {
  return header.split(',').map((part) => {
    const [type = '', ...rest] = part.split(';').map((s) => s.trim());
    const params: Record<string, string> = {};
    for (const p of rest) {
      const i = p.indexOf('=');
      if (i > 0) params[p.slice(0, i).trim().toLowerCase()] = p.slice(i + 1).trim().replace(/^"(.*)"$/, '$1');
    }
    const q = params.q === undefined ? 1 : Number(params.q);
    return { type: type.toLowerCase(), params, q: Number.isFinite(q) && q >= 0 && q <= 1 ? q : 0 };
  }).filter((m) => m.type !== '');
}

/**
 * The format for this Accept header: OpenMetrics only when `application/openmetrics-text`
 * (version 0.0.1, 1.0.0 or none) is what the scraper prefers most; anything else, or no
 * header, gets text 0.0.4.
 */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  if (!accept) return 'text';
  // Highest q first; for equal q the order of the header (a stable sort keeps it).
  const ranked = parseList(accept).filter((m) => m.q > 0).sort((a, b) => b.q - a.q);
  for (const m of ranked) {
    const v = m.params.version;
    if (m.type === 'application/openmetrics-text' && (v === undefined || v === '0.0.1' || v === '1.0.0')) return 'openmetrics';
    if (m.type === 'text/plain' && (v === undefined || v === '0.0.4')) return 'text';
    if (m.type === '*/*' || m.type === 'text/*') return 'text';
  }
  return 'text';
}

/** True when the Accept-Encoding header allows gzip (`gzip` or `*` with q > 0, gzip not refused). */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  const list = parseList(acceptEncoding);
  const gzip = list.find((m) => m.type === 'gzip' || m.type === 'x-gzip');
  if (gzip) return gzip.q > 0;
  return list.some((m) => m.type === '*' && m.q > 0);
}

/**
 * Prometheus text 0.0.4 (as prom-client renders it: HELP and TYPE before each family's
 * samples, no timestamps) → OpenMetrics 1.0.0: a counter's family is named without `_total`
 * and its samples with it (client_golang's rule), HELP also escapes `"`, `untyped` is
 * `unknown`, and the exposition ends with `# EOF`.
 */
export function toOpenMetrics(text: string): string {
  const out: string[] = [];
  // HELP comes before TYPE: it is held until the TYPE line says whether the name changes.
  let help: { name: string; text: string } | null = null;
  const emitHelp = (name: string): void => {
    if (help) out.push(`# HELP ${name} ${help.text.replace(/"/g, '\\"')}`);
    help = null;
  };
  // A counter whose samples lack `_total` (none of ours; prom-client's "all" set may): renamed.
  let renameSamples: string | null = null;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const h = /^# HELP (\S+) ?(.*)$/.exec(line);
    if (h) {
      if (help) emitHelp(help.name);
      help = { name: h[1]!, text: h[2]! };
      continue;
    }
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) {
      const name = t[1]!, type = t[2]!;
      const family = type === 'counter' && name.endsWith('_total') ? name.slice(0, -'_total'.length) : name;
      renameSamples = type === 'counter' && family === name ? name : null;
      if (help && help.name !== name) emitHelp(help.name);
      emitHelp(family);
      out.push(`# TYPE ${family} ${type === 'untyped' ? 'unknown' : type}`);
      continue;
    }
    if (line.startsWith('#')) continue; // other comments have no place in OpenMetrics
    if (renameSamples && (line.startsWith(`${renameSamples}{`) || line.startsWith(`${renameSamples} `))) {
      out.push(`${renameSamples}_total${line.slice(renameSamples.length)}`);
      continue;
    }
    out.push(line);
  }
  if (help) emitHelp((help as { name: string }).name);
  out.push('# EOF');
  return out.join('\n') + '\n';
}
