// `nixos-desync serve`: watchers → in-memory model → collectors → express, plus the optional
// in-process schedule. Logs are JSON lines on stderr; the abort signal shuts everything down.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Config } from '../config/schema.js';
import { createMetricsExporter, type MetricsExporter } from '../metrics/exporter.js';
import { VERSION } from '../metrics/version.js';
import { runUpgrade } from '../upgrade/run.js';
import { DesyncError, errorMessage } from '../util/errors.js';
import { createLogger, type Logger } from '../util/log.js';
import { createHostModel, type HostModel, type HostModelOptions } from '../watch/model.js';
import { upgradeDeps } from '../wire.js';
import { createApp } from './app.js';
import { parseSchedule, startScheduler, type Scheduler } from './schedule.js';

export interface ServeIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

export interface ServeOptions {
  /** Overrides exporter.listenAddress (`--web.listen-address`). */
  listenAddress?: string;
  /** Overrides exporter.webConfigFile (`--web.config.file`). */
  webConfigFile?: string;
  /** `--schedule`: run the upgrade loop in-process (see schedule.ts). */
  schedule?: string;
  io: ServeIo;
  signal?: AbortSignal;
  /** Tests: clock, upgrade runner, model timings, logger. */
  now?: () => Date;
  runUpgrade?: (signal: AbortSignal) => Promise<{ exitCode: number; result: string }>;
  model?: Partial<Omit<HostModelOptions, 'logger'>>;
  logger?: Logger;
  onListening?: (url: string) => void;
}

export interface RunningExporter {
  url: string;
  server: Server;
  model: HostModel;
  exporter: MetricsExporter;
  scheduler: Scheduler | null;
  close(): Promise<void>;
}

/** `127.0.0.1:9793`, `[::1]:9793`, `:9793` (every interface) → host and port. */
export function parseListenAddress(addr: string): { host: string | undefined; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):([0-9]{1,5})$/.exec(addr);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new DesyncError('E_USAGE', `invalid listen address ${JSON.stringify(addr)}: use host:port, e.g. 127.0.0.1:9793 or [::1]:9793`);
  const host = m[1] ?? m[2];
  return { host: host === '' ? undefined : host, port };
}

export async function startExporter(config: Config, opts: ServeOptions): Promise<RunningExporter> {
  const log = opts.logger ?? createLogger({ write: opts.io.stderr, format: 'json', base: { component: 'serve' } });
  const listen = parseListenAddress(opts.listenAddress ?? config.exporter.listenAddress);
  const webConfig = opts.webConfigFile ?? config.exporter.webConfigFile;
  if (webConfig) {
    // Serving without the TLS/auth the operator asked for would be worse than not serving.
    throw new DesyncError('E_WEB_CONFIG', `--web.config.file ${webConfig}: TLS and basic auth are not supported by this version yet; remove the option or put a TLS/auth reverse proxy in front`);
  }
  const schedule = opts.schedule !== undefined ? parseSchedule(opts.schedule) : null;

  const model = createHostModel(config, { logger: log.child({ component: 'watch' }), ...opts.model });
  let server: Server | null = null;
  let scheduler: Scheduler | null = null;
  try {
    await model.ready;
    const exporter = createMetricsExporter({ config, model, logger: log.child({ component: 'metrics' }), now: opts.now });
    const app = createApp({ config, model, exporter, logger: log, version: VERSION, now: opts.now });
    const srv = createServer(app);
    server = srv;
    srv.headersTimeout = 10_000;
    srv.requestTimeout = 30_000;
    srv.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (err: NodeJS.ErrnoException) =>
        reject(new DesyncError('E_USAGE', `cannot listen on ${opts.listenAddress ?? config.exporter.listenAddress}: ${err.code ?? errorMessage(err)}`, { cause: err })));
      srv.listen(listen.port, listen.host, () => resolve());
    });
    const a = srv.address() as AddressInfo;
    const url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`;
    log.info('listening', { url, version: VERSION, stateDir: config.stateDir, profilesDir: config.profilesDir, runDir: config.runDir, prDesyncDir: config.exporter.prDesyncDir });

    if (schedule) {
      const run = opts.runUpgrade ?? ((signal: AbortSignal) =>
        runUpgrade(upgradeDeps(config, log.child({ component: 'upgrade' }), opts.io.env, signal)));
      scheduler = startScheduler({ schedule, run, logger: log.child({ component: 'schedule' }), now: opts.now });
    }
    opts.onListening?.(url);
    const sched = scheduler;
    return {
      url,
      server: srv,
      model,
      exporter,
      scheduler: sched,
      async close() {
        await sched?.stop();
        await closeServer(srv);
        await model.close();
      },
    };
  } catch (err) {
    await scheduler?.stop();
    if (server) await closeServer(server);
    await model.close();
    throw err;
  }
}

async function closeServer(srv: Server): Promise<void> {
  if (!srv.listening) return;
  const closed = new Promise<void>((r) => srv.close(() => r()));
  srv.closeIdleConnections();
  // Scrapes in flight get a moment to finish; then every connection is dropped.
  const t = setTimeout(() => srv.closeAllConnections(), 2_000);
  await closed;
  clearTimeout(t);
}

export async function serve(config: Config, opts: ServeOptions): Promise<number> {
  const log = opts.logger ?? createLogger({ write: opts.io.stderr, format: 'json', base: { component: 'serve' } });
  if (opts.signal?.aborted) return 0;
  const running = await startExporter(config, { ...opts, logger: log });
  await new Promise<void>((resolve) => {
    if (!opts.signal) return; // Without a signal, serve until the process is killed.
    if (opts.signal.aborted) resolve();
    else opts.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  log.info('shutting down');
  await running.close();
  log.info('stopped');
  return 0;
}
