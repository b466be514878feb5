// The request guard in front of the express app, for every request whether or not a web
// config is given. In order: configured response headers; URL length (414); read-only methods
// (405); no request bodies (413); the in-flight cap (503); the rate limit (429); client
// certificate policy; basic auth (401 + WWW-Authenticate: Basic). Only then the app runs.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../util/log.js';
import type { BasicAuth } from './basic-auth.js';
import { normalizeSan } from './san.js';
import type { TlsSettings } from './web-config-tls.js';

export interface HttpLimits {
  /**
   * Requests being answered at once; more are answered 503 at once (`--web.max-requests`,
   * default 40 as node_exporter's; Infinity = no limit).
   */
  maxInFlight: number;
  /** Longest request target accepted, in bytes (default 2048). */
  maxUrlLength: number;
  /** Largest request head (request line + headers), in bytes (default 8 KiB). */
  maxHeaderSize: number;
  /** Whole request head must arrive within this (default 10 s): slow-loris clients are cut off. */
  headersTimeoutMs: number;
  /** Whole request must arrive within this (default 30 s). */
  requestTimeoutMs: number;
  /** Idle keep-alive connections are closed after this (default 5 s). */
  keepAliveTimeoutMs: number;
  /** TLS handshake must finish within this (default 10 s). */
  handshakeTimeoutMs: number;
  /** How often Node checks the two timeouts above (default 1 s; Node's own default is 30 s). */
  timeoutCheckIntervalMs: number;
}

export const DEFAULT_LIMITS: HttpLimits = {
  maxInFlight: 40,
  maxUrlLength: 2048,
  maxHeaderSize: 8 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  handshakeTimeoutMs: 10_000,
  timeoutCheckIntervalMs: 1_000,
};

export type RejectReason = 'url_too_long' | 'method' | 'body' | 'in_flight' | 'rate_limit' | 'client_cert' | 'auth';

export interface GuardStats {
  inFlight: number;
  /** Highest number of requests in flight at once since start. */
  peakInFlight: number;
  rejected: Record<RejectReason, number>;
}

export interface GuardOptions {
  app: RequestListener;
  limits: HttpLimits;
  headers?: Record<string, string>;
  auth?: BasicAuth | null;
  rateLimit?: { intervalMs: number; burst: number } | null;
  tls?: TlsSettings | null;
  logger: Logger;
  now?: () => number;
}

export type GuardedListener = RequestListener & { stats: GuardStats };

/** Why a TLS connection's client certificate is not acceptable under the policy, or null. */
export function clientCertProblem(sock: TLSSocket, tls: TlsSettings): string | null {
  if (tls.clientAuth === 'NoClientCert' || tls.clientAuth === 'RequestClientCert') return null;
  const cert = sock.getPeerX509Certificate();
  if (!cert) return tls.clientAuth === 'VerifyClientCertIfGiven' ? null : 'no client certificate';
  if ((tls.clientAuth === 'VerifyClientCertIfGiven' || tls.clientAuth === 'RequireAndVerifyClientCert') && !sock.authorized) {
    return `client certificate not verified: ${String(sock.authorizationError)}`;
  }
  if (tls.clientAllowedSans) {
    const sans = parseSubjectAltName(cert.subjectAltName ?? '');
    if (!sans.some((s) => tls.clientAllowedSans!.includes(s))) return 'client certificate has none of client_allowed_sans';
  }
  return null;
}

/** Node's `DNS:a, IP Address:1.2.3.4, email:x@y, URI:…` (values may be JSON-quoted) → values. */
export function parseSubjectAltName(s: string): string[] {
  const out: string[] = [];
  const re = /(DNS|IP Address|email|URI|[A-Za-z ]+):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/gy;
  for (let m = re.exec(s); m && m[0] !== ''; m = re.exec(s)) {
    if (!['DNS', 'IP Address', 'email', 'URI'].includes(m[1]!)) continue;
    let v = m[2]!;
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v) as string;
      } catch {
        continue;
      }
    }
    out.push(normalizeSan(v));
  }
  return out;
}

export function createGuard(opts: GuardOptions): GuardedListener {
  const { app, limits, logger: log } = opts;
  const headers = Object.entries(opts.headers ?? {});
  const now = opts.now ?? Date.now;
  const stats: GuardStats = {
    inFlight: 0,
    peakInFlight: 0,
    rejected: { url_too_long: 0, method: 0, body: 0, in_flight: 0, rate_limit: 0, client_cert: 0, auth: 0 },
  };
  // Token bucket: `burst` tokens, one more every `intervalMs` (golang.org/x/time/rate semantics).
  const rl = opts.rateLimit ?? null;
  let tokens = rl?.burst ?? 0;
  let refilledAt = now();
  const take = (): boolean => {
    if (!rl) return true;
    const t = now();
    tokens = Math.min(rl.burst, tokens + (t - refilledAt) / rl.intervalMs);
    refilledAt = t;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };

  const reject = (req: IncomingMessage, res: ServerResponse, status: number, reason: RejectReason, extra: Record<string, string> = {}): void => {
    stats.rejected[reason] += 1;
    log.debug('request rejected', { status, reason, method: req.method, remote: req.socket.remoteAddress });
    res.statusCode = status;
    for (const [k, v] of Object.entries(extra)) res.setHeader(k, v);
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    res.end(`${status} ${MESSAGES[status] ?? ''}\n`);
  };

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    for (const [k, v] of headers) res.setHeader(k, v);
    if ((req.url ?? '').length > limits.maxUrlLength) return reject(req, res, 414, 'url_too_long');
    if (req.method !== 'GET' && req.method !== 'HEAD') return reject(req, res, 405, 'method', { Allow: 'GET, HEAD' });
    const len = req.headers['content-length'];
    if (req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0')) {
      // The body is never read: the connection is closed after the answer.
      return reject(req, res, 413, 'body', { Connection: 'close' });
    }
    if (stats.inFlight >= limits.maxInFlight) return reject(req, res, 503, 'in_flight', { 'Retry-After': '1' });
    stats.inFlight += 1;
    stats.peakInFlight = Math.max(stats.peakInFlight, stats.inFlight);
    let counted = true;
    const done = (): void => {
      if (counted) stats.inFlight -= 1;
      counted = false;
    };
    res.once('finish', done); // the answer is written
    res.once('close', done); // or the connection went away first
    if (!take()) return reject(req, res, 429, 'rate_limit');
    if (opts.tls) {
      // Checked at the TLS layer already (serve.ts); checked again per request, to be sure.
      const problem = clientCertProblem(req.socket as TLSSocket, opts.tls);
      if (problem) {
        stats.rejected.client_cert += 1;
        log.debug('connection rejected', { reason: problem, remote: req.socket.remoteAddress });
        (req.socket as Socket).destroy();
        return;
      }
    }
    if (!opts.auth) return void app(req, res);
    opts.auth.check(req.headers.authorization).then(
      (ok) => {
        if (res.destroyed || res.writableEnded) return;
        if (ok) return void app(req, res);
        reject(req, res, 401, 'auth', { 'WWW-Authenticate': 'Basic' });
      },
      (err: unknown) => {
        log.error('basic auth failed', { error: String(err) });
        if (!res.writableEnded) reject(req, res, 401, 'auth', { 'WWW-Authenticate': 'Basic' });
      },
    );
  };
  return Object.assign(listener, { stats });
}

const MESSAGES: Record<number, string> = {
  401: 'Unauthorized',
  405: 'Method Not Allowed: this exporter only answers GET and HEAD',
  413: 'Payload Too Large: requests have no body',
  414: 'URI Too Long',
  429: 'Too Many Requests',
  503: 'Service Unavailable: too many requests in flight, retry',
};
