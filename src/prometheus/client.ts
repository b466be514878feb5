// A small client for the Prometheus HTTP API (instant queries and active alerts), shared by the
// fleet checks (`rollout`, `reboot.blockOnAlerts`): credentials come from files read at each
// request (rotated tokens are picked up), every failure is a DesyncError whose `code` says what
// went wrong and whose `details.transient` says whether Prometheus may answer next time.
import { readFile as fsReadFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { PrometheusEndpoint } from '../config/schema.js';
import { parseDuration } from '../util/duration.js';
import { DesyncError, errorMessage } from '../util/errors.js';
import { VERSION } from '../util/version.js';

/** Largest response body read (an answer of the alerts API of a big fleet stays far below it). */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

export interface Sample {
  labels: Record<string, string>;
  /** Prometheus sends values as strings: NaN and ±Inf are parsed too. */
  value: number;
  /** Unix seconds of the evaluation. */
  timestamp: number;
}

export type InstantResult =
  | { resultType: 'vector'; samples: Sample[]; warnings: string[] }
  | { resultType: 'scalar'; value: number; timestamp: number; warnings: string[] }
  | { resultType: 'string'; value: string; timestamp: number; warnings: string[] }
  | { resultType: 'matrix'; series: Array<{ labels: Record<string, string>; values: Array<[number, number]> }>; warnings: string[] };

export interface PrometheusAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
  activeAt: string | null;
  value: string;
}

export interface PrometheusClient {
  /** The base URL, for messages (it never holds credentials: the config refuses them). */
  readonly url: string;
  /** `/api/v1/query` at `time` (default: Prometheus's now). */
  query(expr: string, options?: { time?: Date }): Promise<InstantResult>;
  /** `query` that must return an instant vector. */
  queryVector(expr: string, options?: { time?: Date }): Promise<Sample[]>;
  /** `/api/v1/alerts`: the alerts the rules of this Prometheus have pending or firing now. */
  alerts(): Promise<PrometheusAlert[]>;
}

export interface PrometheusClientDeps {
  readFile?: (path: string) => Promise<Buffer>;
}

interface Answer {
  status: number;
  statusText: string;
  body: Buffer;
}

export function createPrometheusClient(endpoint: PrometheusEndpoint, deps: PrometheusClientDeps = {}): PrometheusClient {
  const readFile = deps.readFile ?? ((p: string) => fsReadFile(p));
  const base = new URL(endpoint.url);
  const prefix = base.pathname.replace(/\/+$/, '');
  const timeoutMs = parseDuration(endpoint.timeout) ?? 30_000;
  const display = `${base.origin}${prefix}`;

  const fail = (code: 'E_PROMETHEUS_UNREACHABLE' | 'E_PROMETHEUS_HTTP' | 'E_PROMETHEUS_RESPONSE' | 'E_PROMETHEUS_QUERY' | 'E_PROMETHEUS_CREDENTIALS', message: string, transient: boolean, extra: Record<string, unknown> = {}, cause?: unknown): DesyncError =>
    new DesyncError(code, `Prometheus ${display}: ${message}`, { cause, details: { url: display, transient, ...extra } });

  async function secret(file: string, what: string): Promise<string> {
    try {
      // A trailing newline (echo > file) is not part of the secret.
      return (await readFile(file)).toString('utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw fail('E_PROMETHEUS_CREDENTIALS', `cannot read ${what} ${file}: ${errorMessage(err)}`, false, { file }, err);
    }
  }

  async function headers(): Promise<Record<string, string>> {
    const h: Record<string, string> = { accept: 'application/json', 'user-agent': `nixos-desync/${VERSION}` };
    if (endpoint.bearerTokenFile !== null) h.authorization = `Bearer ${await secret(endpoint.bearerTokenFile, 'bearerTokenFile')}`;
    if (endpoint.basicAuth !== null) {
      const password = await secret(endpoint.basicAuth.passwordFile, 'basicAuth.passwordFile');
      h.authorization = `Basic ${Buffer.from(`${endpoint.basicAuth.username}:${password}`).toString('base64')}`;
    }
    return h;
  }

  async function ca(): Promise<Buffer | undefined> {
    if (endpoint.caFile === null) return undefined;
    try {
      return await readFile(endpoint.caFile);
    } catch (err) {
      throw fail('E_PROMETHEUS_CREDENTIALS', `cannot read caFile ${endpoint.caFile}: ${errorMessage(err)}`, false, { file: endpoint.caFile }, err);
    }
  }

  async function send(method: 'GET' | 'POST', apiPath: string, form?: URLSearchParams): Promise<Answer> {
    const h = await headers();
    const caCert = await ca();
    const body = form === undefined ? undefined : Buffer.from(form.toString());
    if (body !== undefined) {
      h['content-type'] = 'application/x-www-form-urlencoded';
      h['content-length'] = String(body.length);
    }
    const url = new URL(`${prefix}${apiPath}`, base.origin);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<Answer>((resolve, reject) => {
      let settled = false;
      const done = (err: DesyncError | null, answer?: Answer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          req.destroy();
          reject(err);
        } else resolve(answer!);
      };
      // One deadline for connect + TLS + response (a socket idle timeout alone lets a slow
      // trickle run forever).
      const timer = setTimeout(() => done(fail('E_PROMETHEUS_UNREACHABLE', `no answer within ${endpoint.timeout} (${method} ${apiPath})`, true, { reason: 'timeout' })), timeoutMs);
      const req = mod.request(url, { method, headers: h, agent: false, ...(caCert !== undefined ? { ca: caCert } : {}) }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            done(fail('E_PROMETHEUS_RESPONSE', `response larger than ${MAX_RESPONSE_BYTES} bytes (${method} ${apiPath})`, false));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => done(null, { status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', body: Buffer.concat(chunks) }));
        res.on('error', (err) => done(fail('E_PROMETHEUS_UNREACHABLE', `connection lost while reading the answer: ${errorMessage(err)}`, true, { reason: 'connection' }, err)));
      });
      req.on('error', (err) => {
        const code = (err as NodeJS.ErrnoException).code;
        done(fail('E_PROMETHEUS_UNREACHABLE', `unreachable: ${errorMessage(err)}`, true, { reason: code !== undefined && /CERT|SSL|TLS|SIGNATURE|ERR_TLS/i.test(code) ? 'tls' : 'connection', errno: code }, err));
      });
      req.end(body);
    });
  }

  /** The `data` of a Prometheus API answer, or the error it describes. */
  async function api(method: 'GET' | 'POST', apiPath: string, form?: URLSearchParams): Promise<unknown> {
    const a = await send(method, apiPath, form);
    const text = a.body.toString('utf8');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      if (a.status < 200 || a.status >= 300) throw fail('E_PROMETHEUS_HTTP', `HTTP ${a.status} ${a.statusText} (${method} ${apiPath}): ${excerpt(text)}`, a.status >= 500 || a.status === 429, { status: a.status }, err);
      throw fail('E_PROMETHEUS_RESPONSE', `answer is not JSON (${method} ${apiPath}, HTTP ${a.status}): ${excerpt(text)}`, false, { status: a.status }, err);
    }
    const o = isObject(json) ? json : {};
    if (o.status === 'error' && typeof o.error === 'string') {
      const errorType = typeof o.errorType === 'string' ? o.errorType : 'unknown';
      // Prometheus's own overload/timeout answers pass; a bad query or a refused request does not.
      const transient = ['timeout', 'canceled', 'unavailable'].includes(errorType) || a.status >= 500;
      throw fail('E_PROMETHEUS_QUERY', `query failed (HTTP ${a.status}, ${errorType}): ${o.error}`, transient, { status: a.status, errorType, error: o.error });
    }
    if (a.status < 200 || a.status >= 300) throw fail('E_PROMETHEUS_HTTP', `HTTP ${a.status} ${a.statusText} (${method} ${apiPath}): ${excerpt(text)}`, a.status >= 500 || a.status === 429, { status: a.status });
    if (o.status !== 'success' || !('data' in o)) throw fail('E_PROMETHEUS_RESPONSE', `answer is not a Prometheus API response (${method} ${apiPath}): ${excerpt(text)}`, false);
    const warnings = Array.isArray(o.warnings) ? o.warnings.filter((w): w is string => typeof w === 'string') : [];
    return { data: o.data, warnings };
  }

  const shape = (what: string): DesyncError => fail('E_PROMETHEUS_RESPONSE', `unexpected ${what} in the answer`, false);

  async function query(expr: string, options: { time?: Date } = {}): Promise<InstantResult> {
    const form = new URLSearchParams({ query: expr, timeout: `${Math.max(1, Math.floor(timeoutMs / 1000))}s` });
    if (options.time !== undefined) form.set('time', (options.time.getTime() / 1000).toFixed(3));
    const { data, warnings } = (await api('POST', '/api/v1/query', form)) as { data: unknown; warnings: string[] };
    if (!isObject(data)) throw shape('data');
    const r = data.result;
    switch (data.resultType) {
      case 'vector':
        if (!Array.isArray(r)) throw shape('vector');
        return { resultType: 'vector', warnings, samples: r.map((s) => {
          if (!isObject(s) || !Array.isArray(s.value)) throw shape('vector sample');
          const [t, v] = point(s.value, shape);
          return { labels: labels(s.metric, shape), value: v, timestamp: t };
        }) };
      case 'scalar': {
        const [t, v] = point(r, shape);
        return { resultType: 'scalar', value: v, timestamp: t, warnings };
      }
      case 'string':
        if (!Array.isArray(r) || typeof r[0] !== 'number' || typeof r[1] !== 'string') throw shape('string');
        return { resultType: 'string', value: r[1], timestamp: r[0], warnings };
      case 'matrix':
        if (!Array.isArray(r)) throw shape('matrix');
        return { resultType: 'matrix', warnings, series: r.map((s) => {
          if (!isObject(s) || !Array.isArray(s.values)) throw shape('matrix series');
          return { labels: labels(s.metric, shape), values: s.values.map((p) => point(p, shape)) };
        }) };
      default:
        throw shape(`resultType ${JSON.stringify(data.resultType)}`);
    }
  }

  return {
    url: display,
    query,
    async queryVector(expr, options) {
      const r = await query(expr, options);
      if (r.resultType !== 'vector') throw fail('E_PROMETHEUS_RESPONSE', `expected an instant vector, got a ${r.resultType} for ${expr}`, false);
      return r.samples;
    },
    async alerts() {
      const { data } = (await api('GET', '/api/v1/alerts')) as { data: unknown };
      if (!isObject(data) || !Array.isArray(data.alerts)) throw shape('alerts');
      return data.alerts.map((a): PrometheusAlert => {
        if (!isObject(a)) throw shape('alert');
        const state = a.state === 'firing' || a.state === 'pending' || a.state === 'inactive' ? a.state : undefined;
        if (state === undefined) throw shape(`alert state ${JSON.stringify(a.state)}`);
        return {
          labels: labels(a.labels, shape),
          annotations: labels(a.annotations ?? {}, shape),
          state,
          activeAt: typeof a.activeAt === 'string' ? a.activeAt : null,
          value: typeof a.value === 'string' ? a.value : String(a.value ?? ''),
        };
      });
    },
  };
}

/** True when Prometheus may answer a later attempt (connection, timeout, 5xx, its own overload). */
export function isTransientPrometheusError(err: unknown): boolean {
  return err instanceof DesyncError && err.code.startsWith('E_PROMETHEUS_') && err.details.transient === true;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function labels(v: unknown, shape: (what: string) => Error): Record<string, string> {
  if (!isObject(v)) throw shape('label set');
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string') throw shape(`label ${k}`);
    out[k] = x;
  }
  return out;
}

function point(v: unknown, shape: (what: string) => Error): [number, number] {
  if (!Array.isArray(v) || typeof v[0] !== 'number' || typeof v[1] !== 'string') throw shape('sample');
  // Prometheus writes "NaN", "+Inf", "-Inf"; Number() reads "NaN" but not "+Inf".
  const value = v[1] === '+Inf' ? Infinity : v[1] === '-Inf' ? -Infinity : Number(v[1]);
  return [v[0], value];
}

function excerpt(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 300 ? `${t.slice(0, 300)}…` : t || '(empty body)';
}
