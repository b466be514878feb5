// `nixos-desync serve`: watchers → in-memory model → collectors → express. It never runs the
// upgrade loop (timers do: the exporter stays unprivileged and read-only). Logs are JSON lines
// on stderr; the abort signal shuts everything down.
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { isIP, type AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Config } from '../config/schema.js';
import { createMetricsExporter, type MetricsExporter } from '../metrics/exporter.js';
import { VERSION } from '../util/version.js';
import { DesyncError, errorMessage } from '../util/errors.js';
import { createLogger, type Logger } from '../util/log.js';
import { createHostModel, type HostModel, type HostModelOptions } from '../watch/model.js';
import { createHandler } from './app.js';
import type { BasicAuth, BcryptCompare } from './basic-auth.js';
import { clientCertProblem, createGuard, DEFAULT_LIMITS, type GuardStats, type HttpLimits } from './guard.js';
import type { WebConfig } from './web-config.js';
import { systemdListenFd } from './systemd-socket.js';

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
  /** Listen on the socket systemd passed (`--web.systemd-socket`) instead of the listen address. */
  systemdSocket?: boolean;
  /** Requests answered at once, more get 503 (`--web.max-requests`; 0 = no limit; default 40). */
  maxRequests?: number;
  /** False drops the exporter's own process_/nodejs_ series (`--web.disable-exporter-metrics`). */
  exporterMetrics?: boolean;
  io: ServeIo;
  signal?: AbortSignal;
  /**
   * A rendering is reused for up to this many ms while the model and the clock's second are
   * unchanged (default 1000; 0 = collect on every scrape).
   */
  metricsCacheMs?: number;
  /** Tests: clock, model timings, logger. */
  now?: () => Date;
  model?: Partial<Omit<HostModelOptions, 'logger'>>;
  logger?: Logger;
  onListening?: (url: string) => void;
  /** The systemctl program for exporter.upgradeUnit (tests: an executable stand-in). */
  systemctl?: string;
  /** Tests: request limits and timeouts (see guard.ts for the defaults). */
  limits?: Partial<HttpLimits>;
  /** Tests: the bcrypt comparator (e.g. to count comparisons) and the auth cache size. */
  bcryptCompare?: BcryptCompare;
  authCacheSize?: number;
}

export interface RunningExporter {
  url: string;
  server: Server | HttpsServer;
  model: HostModel;
  exporter: MetricsExporter;
  /** The parsed `--web.config.file`, if any. */
  webConfig: WebConfig | null;
  /** Requests in flight and rejected, by reason. */
  guard: GuardStats;
  /** Basic auth (comparisons, cache hits), when users are configured. */
  auth: BasicAuth | null;
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

/** True for an address only this host can reach: 127.0.0.0/8, ::1, IPv4-mapped loopback, localhost. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false; // `:port` listens on every interface
  const h = host.toLowerCase();
  if (h === 'localhost' || h === 'ip6-localhost') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) {
    // The WHATWG URL parser canonicalises IPv6 (0:0:0:0:0:0:0:1 → ::1, ::ffff:127.0.0.1 → ::ffff:7f00:1).
    const canon = new URL(`http://[${h}]/`).hostname;
    return canon === '[::1]' || canon.startsWith('[::ffff:7f');
  }
  return false;
}

/**
 * The landing page shows error excerpts and file paths only where strangers cannot read
 * them: on a loopback-only listener, or when every request is authenticated (basic auth, or a
 * client certificate verified against the configured CA).
 */
export function landingDetailsAllowed(host: string | undefined, web: WebConfig | null): boolean {
  if (isLoopbackHost(host)) return true;
  if (web && web.users.size > 0) return true;
  return web?.tls?.clientAuth === 'RequireAndVerifyClientCert';
}

export async function startExporter(config: Config, opts: ServeOptions): Promise<RunningExporter> {
  const log = opts.logger ?? createLogger({ write: opts.io.stderr, format: 'json', base: { component: 'serve' } });
  const listen = parseListenAddress(opts.listenAddress ?? config.exporter.listenAddress);
  const webConfigFile = opts.webConfigFile ?? config.exporter.webConfigFile;
  // Validated in full (YAML, hashes, headers, certificates and keys) before anything starts.
  // web-config (and its YAML parser) loads only when there is a web config to read.
  const web = webConfigFile ? await (await import('./web-config.js')).loadWebConfig(webConfigFile) : null;
  const limits: HttpLimits = { ...DEFAULT_LIMITS, ...(opts.maxRequests === undefined ? {} : { maxInFlight: opts.maxRequests === 0 ? Infinity : opts.maxRequests }), ...opts.limits };
  // Checked before anything starts: a missing socket is a clear error, not a hang.
  const listenFd = opts.systemdSocket ? systemdListenFd(opts.io.env, process.pid) : null;

  const model = createHostModel(config, { logger: log.child({ component: 'watch' }), ...opts.model });
  let server: Server | HttpsServer | null = null;
  try {
    await model.ready;
    const exporter = createMetricsExporter({ config, model, logger: log.child({ component: 'metrics' }), now: opts.now, cacheMs: opts.metricsCacheMs ?? 1000, systemctl: opts.systemctl, env: opts.io.env,
      ...(opts.exporterMetrics === false ? { processMetrics: false } : {}) });
    // A socket from systemd may listen anywhere: details only for authenticated requests then.
    const landingDetails = landingDetailsAllowed(listenFd === null ? listen.host : undefined, web);
    const app = createHandler({ config, model, exporter, logger: log, version: VERSION, now: opts.now, landingDetails });
    // bcryptjs loads only when there are users to check.
    const auth = web && web.users.size > 0
      ? (await import('./basic-auth.js')).createBasicAuth({ users: web.users, compare: opts.bcryptCompare, cacheSize: opts.authCacheSize })
      : null;
    const guard = createGuard({
      app,
      limits,
      headers: web?.headers,
      auth,
      rateLimit: web?.rateLimit,
      tls: web?.tls,
      logger: log.child({ component: 'http' }),
    });
    const httpOptions = {
      maxHeaderSize: limits.maxHeaderSize,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      connectionsCheckingInterval: limits.timeoutCheckIntervalMs,
    };
    const tls = web?.tls ?? null;
    let srv: Server | HttpsServer;
    if (tls) {
      const requestCert = tls.clientAuth !== 'NoClientCert';
      srv = createHttpsServer({
        ...httpOptions,
        cert: tls.cert,
        key: tls.key,
        // Client certificates are verified against the configured CAs only, never the system's:
        // with no client_ca_file the trust store is empty and no presented certificate verifies.
        ...(requestCert ? { ca: tls.clientCa ? [tls.clientCa] : [] } : {}),
        requestCert,
        rejectUnauthorized: tls.clientAuth === 'RequireAndVerifyClientCert',
        minVersion: tls.minVersion,
        maxVersion: tls.maxVersion,
        ...(tls.ciphers ? { ciphers: tls.ciphers } : {}),
        ...(tls.ecdhCurve ? { ecdhCurve: tls.ecdhCurve } : {}),
        honorCipherOrder: tls.honorCipherOrder,
        ALPNProtocols: ['http/1.1'],
        handshakeTimeout: limits.handshakeTimeoutMs,
      }, guard);
      srv.on('secureConnection', (sock: TLSSocket) => {
        const problem = clientCertProblem(sock, tls);
        if (problem) {
          guard.stats.rejected.client_cert += 1;
          log.debug('TLS connection rejected', { reason: problem, remote: sock.remoteAddress });
          sock.destroy();
        }
      });
      srv.on('tlsClientError', (err: Error, sock: TLSSocket) => {
        log.debug('TLS handshake failed', { error: err.message, remote: sock.remoteAddress });
      });
    } else {
      srv = createServer(httpOptions, guard);
    }
    server = srv;
    srv.headersTimeout = limits.headersTimeoutMs;
    srv.requestTimeout = limits.requestTimeoutMs;
    srv.keepAliveTimeout = limits.keepAliveTimeoutMs;
    const where = listenFd === null ? opts.listenAddress ?? config.exporter.listenAddress : `the socket from systemd (fd ${listenFd})`;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (err: NodeJS.ErrnoException) =>
        reject(new DesyncError('E_LISTEN', `cannot listen on ${where}: ${err.code ?? errorMessage(err)}`, { cause: err })));
      if (listenFd === null) srv.listen(listen.port, listen.host, () => resolve());
      else srv.listen({ fd: listenFd }, () => resolve());
    });
    const a = srv.address() as AddressInfo | string;
    // A socket unit may pass a Unix socket (ListenStream=/run/…): its path is the address.
    const url = typeof a === 'string' ? `${tls ? 'https' : 'http'}+unix:${a}` : `${tls ? 'https' : 'http'}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}/`;
    log.info('listening', {
      url,
      tls: tls ? { clientAuth: tls.clientAuth, minVersion: tls.minVersion, maxVersion: tls.maxVersion } : false,
      basicAuthUsers: web?.users.size ?? 0,
      landingPageDetails: landingDetails,
      systemdSocket: listenFd !== null,
      maxRequests: Number.isFinite(limits.maxInFlight) ? limits.maxInFlight : 0,
      exporterMetrics: opts.exporterMetrics !== false,
      webConfigFile: webConfigFile ?? null,
      version: VERSION, stateDir: config.stateDir, profilesDir: config.profilesDir, runDir: config.runDir, prDesyncDir: config.exporter.prDesyncDir });
    opts.onListening?.(url);
    return {
      url,
      server: srv,
      model,
      exporter,
      webConfig: web,
      guard: guard.stats,
      auth,
      async close() {
        await closeServer(srv);
        await model.close();
      },
    };
  } catch (err) {
    if (server) await closeServer(server);
    await model.close();
    throw err;
  }
}

async function closeServer(srv: Server | HttpsServer): Promise<void> {
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
