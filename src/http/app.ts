// The HTTP surface: /metrics (text 0.0.4, OpenMetrics when asked for, gzip when accepted),
// /healthz, and the landing page.
// No endpoint changes any state.
import type { Express } from 'express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Config } from '../config/schema.js';
import { buildStatus } from '../views/status.js';
import type { MetricsExporter } from '../metrics/exporter.js';
import type { HostModel } from '../watch/model.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { isProcessAlive } from '../util/proc.js';
import { renderLanding } from './landing.js';
import { acceptsGzip, negotiateFormat, OPENMETRICS_CONTENT_TYPE, toOpenMetrics, type ExpositionFormat } from './exposition.js';

const gzipAsync = promisify(gzip);

export interface AppOptions {
  config: Config;
  model: HostModel;
  exporter: MetricsExporter;
  logger: Logger;
  version: string;
  now?: () => Date;
  /**
   * Show error excerpts and file paths on the landing page (default false): serve.ts sets it
   * only for a loopback-only or authenticated listener (`landingDetailsAllowed`).
   */
  landingDetails?: boolean;
}

/**
 * GET /metrics as a plain node:http handler: requests that share one scrape also share its
 * encoded bodies (text 0.0.4 or OpenMetrics, plain or gzip: each made once per rendering).
 */
export function metricsHandler(exporter: MetricsExporter, log: Logger): (req: IncomingMessage, res: ServerResponse) => void {
  let lastText: string | null = null;
  let bodies = new Map<string, Promise<Buffer>>();
  const body = (text: string, format: ExpositionFormat, gzip: boolean): Promise<Buffer> => {
    if (text !== lastText) {
      lastText = text;
      bodies = new Map();
    }
    const key = `${format}/${gzip}`;
    let b = bodies.get(key);
    if (!b) {
      const plain = Buffer.from(format === 'openmetrics' ? toOpenMetrics(text) : text, 'utf8');
      b = gzip ? gzipAsync(plain) : Promise.resolve(plain);
      const set = bodies;
      set.set(key, b);
      b.catch(() => set.delete(key)); // a failed compression is not kept
    }
    return b;
  };
  return (req, res) => {
    const format = negotiateFormat(req.headers.accept);
    const gzip = acceptsGzip(req.headers['accept-encoding']);
    exporter.metrics().then((text) => body(text, format, gzip)).then((buf) => {
      res.writeHead(200, {
        'Content-Type': format === 'openmetrics' ? OPENMETRICS_CONTENT_TYPE : exporter.contentType,
        'Cache-Control': 'no-store',
        Vary: 'Accept, Accept-Encoding',
        ...(gzip ? { 'Content-Encoding': 'gzip' } : {}),
        'Content-Length': buf.length,
      });
      res.end(buf);
    }, (err: unknown) => {
      log.error('scrape failed', { error: errorMessage(err) });
      res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`scrape failed: ${errorMessage(err)}\n`);
    });
  };
}

/** The request handler: /metrics directly (the hot path), everything else through express. */
export function createHandler(opts: AppOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const metrics = metricsHandler(opts.exporter, opts.logger);
  // express loads with the first request that is not a scrape: an exporter that is only
  // scraped never holds it (several MB of heap for three routes).
  let app: Promise<Express> | undefined;
  return (req, res) => {
    const url = req.url ?? '';
    if (url === '/metrics' || url.startsWith('/metrics?')) return metrics(req, res);
    (app ??= createApp(opts)).then((a) => a(req, res), (err: unknown) => {
      opts.logger.error('cannot load the HTTP routes', { error: errorMessage(err) });
      res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('internal error\n');
    });
  };
}

export async function createApp(opts: AppOptions): Promise<Express> {
  const { default: express } = await import('express');
  const { config, model, exporter, logger: log } = opts;
  const now = opts.now ?? (() => new Date());
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/metrics', metricsHandler(exporter, log));

  app.get('/healthz', (_req, res) => {
    // Healthy means: the process answers and every watched source was read at least once.
    res.status(200).type('application/json').set('Cache-Control', 'no-store').send(JSON.stringify({ status: 'ok', scrapes: exporter.scrapes }) + '\n');
  });

  app.get('/', (_req, res) => {
    const s = model.state;
    const problems = [
      ...(s.stateProblem ? [s.stateProblem] : []),
      ...(s.historyProblem ? [s.historyProblem] : []),
      ...(s.journalProblem ? [s.journalProblem] : []),
      ...s.corruptFiles.map((f) => ({ file: `${config.stateDir}/${f}`, message: 'corrupt file moved aside by an earlier run' })),
      ...(s.dirError ? [{ file: config.stateDir, message: s.dirError }] : []),
      ...(s.untrusted ? [{ file: config.stateDir, message: s.untrusted }] : []),
    ];
    const sys = model.system;
    const status = buildStatus(config, s.state, {
      generation: sys.generation,
      generationTimestamp: sys.generationTimestamp,
      generations: sys.generations,
      rebootRequired: sys.rebootRequired,
      activationPending: sys.activationPending,
    }, now(), problems);
    const html = renderLanding({
      version: opts.version,
      details: opts.landingDetails ?? false,
      status,
      pr: model.pr?.desyncs ?? null,
      collectors: { ...exporter.lastOutcome },
      recentRuns: s.recentRuns,
      runInProgress: s.runHolder !== null || (s.journal !== null && isProcessAlive(s.journal.pid, s.journal.pidStartTime)),
    });
    res.status(200).type('text/html; charset=utf-8').set('Cache-Control', 'no-store').send(html);
  });

  app.use((_req, res) => {
    res.status(404).type('text/plain').send('not found; see / for the endpoints\n');
  });
  return app;
}
