// The Prometheus client against a real Prometheus on loopback (queries, alerts, errors it
// answers, a route prefix) and against small Node servers for what Prometheus itself does not
// do here: TLS with a private CA, bearer and basic auth, proxies' HTML errors, silence.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { prometheusEndpoint, type PrometheusEndpoint } from '../../src/config/schema.js';
import { createPrometheusClient, isTransientPrometheusError } from '../../src/prometheus/client.js';
import { DesyncError } from '../../src/util/errors.js';
import { freePort, startPrometheus, type StartedPrometheus } from '../helpers/prometheus.js';
import { requireTools } from '../helpers/tools.js';

const endpoint = (v: unknown): PrometheusEndpoint => prometheusEndpoint.parse(v);

async function rejection(p: Promise<unknown>): Promise<DesyncError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(DesyncError);
    return err as DesyncError;
  }
  throw new Error('expected a rejection');
}

describe('prometheusEndpoint (config)', () => {
  it('takes a bare URL and fills in the defaults', () => {
    expect(endpoint('http://prom.example:9090/')).toEqual({ url: 'http://prom.example:9090/', bearerTokenFile: null, basicAuth: null, caFile: null, timeout: '30s' });
  });

  it.each([
    ['ftp://prom.example', /http:\/\/ or https:\/\//],
    ['not a url', /must be an http\(s\) URL/],
    ['https://user:secret@prom.example', /must not contain credentials/],
    ['https://prom.example/?x=1', /must not have a query/],
  ])('refuses the URL %s', (url, message) => {
    const r = prometheusEndpoint.safeParse(url);
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.message).join('\n')).toMatch(message);
  });

  it('refuses secrets in the store, relative files, both auth kinds, unknown keys', () => {
    const problems = (v: unknown): string => {
      const r = prometheusEndpoint.safeParse(v);
      return r.success ? '' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n');
    };
    expect(problems({ url: 'http://p:9090', bearerTokenFile: '/nix/store/abc-token' })).toMatch(/bearerTokenFile: must not be in \/nix\/store/);
    expect(problems({ url: 'http://p:9090', basicAuth: { username: 'u', passwordFile: '/nix/store/abc-pw' } })).toMatch(/basicAuth.passwordFile: must not be in \/nix\/store/);
    expect(problems({ url: 'http://p:9090', basicAuth: { username: 'a:b', passwordFile: '/run/pw' } })).toMatch(/username: must not contain ":"/);
    expect(problems({ url: 'http://p:9090', caFile: 'ca.pem' })).toMatch(/caFile: must be an absolute path/);
    expect(problems({ url: 'http://p:9090', bearerTokenFile: '/run/t', basicAuth: { username: 'u', passwordFile: '/run/pw' } })).toMatch(/exclusive/);
    expect(problems({ url: 'http://p:9090', password: 'x' })).toMatch(/password/);
    expect(problems({ url: 'http://p:9090', timeout: '4w' })).toMatch(/timeout: must be at most 24d/);
    // A CA certificate is not a secret: from the store is fine.
    expect(problems({ url: 'https://p:9090', caFile: '/nix/store/abc-ca.pem' })).toBe('');
  });

  it('is not a config key of its own: an unknown top-level key stays an error', () => {
    expect(() => parseConfig({ prometheus: 'http://p:9090' })).toThrow(/unknown key/);
  });
});

const withPrometheus = requireTools('prometheus');

describe.skipIf(!withPrometheus)('against a real Prometheus (loopback, route prefix /prom)', () => {
  let dir = '';
  let prom: StartedPrometheus | null = null;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nixos-desync-promclient-'));
    const rules = path.join(dir, 'rules.yml');
    await writeFile(rules, [
      'groups:',
      '  - name: client-test',
      '    rules:',
      '      - alert: AlwaysFiring',
      '        expr: vector(1)',
      '        labels: { severity: warning }',
      '        annotations: { summary: "fires from the first evaluation" }',
      '',
    ].join('\n'));
    prom = await startPrometheus(dir, [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${JSON.stringify(rules)}`,
      'scrape_configs: []',
      '',
    ].join('\n'), { prefix: '/prom' });
  }, 30_000);

  afterAll(async () => {
    await prom?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs instant queries: vectors with labels, scalars, strings, matrices, special values', async () => {
    const c = createPrometheusClient(endpoint(prom!.url));
    const v = await c.queryVector('label_replace(vector(42), "revision", "abc123", "", "")');
    expect(v).toHaveLength(1);
    expect(v[0]!.labels).toEqual({ revision: 'abc123' });
    expect(v[0]!.value).toBe(42);
    expect(v[0]!.timestamp).toBeGreaterThan(Date.now() / 1000 - 60);
    const at = new Date('2026-01-01T00:00:00Z');
    expect(await c.query('1 + 1', { time: at })).toMatchObject({ resultType: 'scalar', value: 2, timestamp: at.getTime() / 1000 });
    expect(await c.query('"hello"')).toMatchObject({ resultType: 'string', value: 'hello' });
    expect(await c.queryVector('vector(+Inf)')).toMatchObject([{ value: Infinity }]);
    expect((await c.queryVector('vector(NaN)'))[0]!.value).toBeNaN();
    expect(await c.queryVector('absent_over_time(nothing_here[1m]) == 0')).toEqual([]);
    // A range selector answers a matrix (empty here: nothing scraped), which queryVector refuses.
    expect(await c.query('up[1m]')).toMatchObject({ resultType: 'matrix', series: [] });
    const notVector = await rejection(c.queryVector('1'));
    expect(notVector.code).toBe('E_PROMETHEUS_RESPONSE');
    expect(notVector.message).toMatch(/expected an instant vector, got a scalar/);
  });

  it('says why Prometheus refused a query, and that trying again will not help', async () => {
    const c = createPrometheusClient(endpoint(prom!.url));
    const e = await rejection(c.query('sum(('));
    expect(e.code).toBe('E_PROMETHEUS_QUERY');
    expect(e.details).toMatchObject({ status: 400, errorType: 'bad_data', transient: false });
    expect(e.message).toMatch(/^Prometheus http:\/\/127\.0\.0\.1:\d+\/prom: query failed \(HTTP 400, bad_data\): .*parse error/);
    expect(isTransientPrometheusError(e)).toBe(false);
  });

  it('lists the alerts that fire', async () => {
    const c = createPrometheusClient(endpoint(`${prom!.url}/`));
    let alerts = await c.alerts();
    for (let i = 0; i < 50 && !alerts.some((a) => a.state === 'firing'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      alerts = await c.alerts();
    }
    expect(alerts).toEqual([expect.objectContaining({
      labels: { alertname: 'AlwaysFiring', severity: 'warning' },
      annotations: { summary: 'fires from the first evaluation' },
      state: 'firing',
      value: '1e+00',
    })]);
    expect(Date.parse(alerts[0]!.activeAt!)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('without the route prefix the answer is not the API: a clear HTTP error', async () => {
    const c = createPrometheusClient(endpoint(`http://127.0.0.1:${prom!.port}`));
    const e = await rejection(c.alerts());
    expect(e.code).toBe('E_PROMETHEUS_HTTP');
    expect(e.details).toMatchObject({ status: 404, transient: false });
  });
});

// ---------------------------------------------------------------------------------------
// Small servers: what a proxy or a TLS/auth front end in front of Prometheus answers.

const OK_VECTOR = JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: { a: 'b' }, value: [1700000000.5, '3'] }] } });

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;
const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function serve(handler: Handler): Promise<string> {
  const s = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => handler(req, Buffer.concat(chunks).toString('utf8'), res));
  });
  servers.push(s);
  return `http://127.0.0.1:${await listen(s)}`;
}

describe('against small servers: auth, proxies, failures', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nixos-desync-promclient-'));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('sends the bearer token from its file (trailing newline dropped, re-read on every request) with a form POST', async () => {
    const seen: Array<{ method?: string; auth?: string; type?: string; body: string; ua?: string }> = [];
    const url = await serve((req, body, res) => {
      seen.push({ method: req.method, auth: req.headers.authorization, type: req.headers['content-type'], body, ua: req.headers['user-agent'] });
      res.writeHead(200, { 'content-type': 'application/json' }).end(OK_VECTOR);
    });
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, 'tok-1\n');
    const c = createPrometheusClient(endpoint({ url, bearerTokenFile: tokenFile, timeout: '5s' }));
    expect(await c.queryVector('up{job="x"}')).toEqual([{ labels: { a: 'b' }, value: 3, timestamp: 1700000000.5 }]);
    await writeFile(tokenFile, 'tok-2');
    await c.queryVector('up');
    expect(seen.map((s) => s.auth)).toEqual(['Bearer tok-1', 'Bearer tok-2']);
    expect(seen[0]).toMatchObject({ method: 'POST', type: 'application/x-www-form-urlencoded', ua: expect.stringMatching(/^nixos-desync\//) });
    expect(Object.fromEntries(new URLSearchParams(seen[0]!.body))).toEqual({ query: 'up{job="x"}', timeout: '5s' });
  });

  it('sends basic auth with the password from its file; a refused login is an HTTP error that does not pass by itself', async () => {
    const url = await serve((req, _body, res) => {
      if (req.headers.authorization === `Basic ${Buffer.from('desync:s3cret:with:colons').toString('base64')}`) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'success', data: { alerts: [] } }));
      } else res.writeHead(401, { 'www-authenticate': 'Basic realm="prom"' }).end('Unauthorized\n');
    });
    const pw = path.join(dir, 'password');
    await writeFile(pw, 's3cret:with:colons\n');
    expect(await createPrometheusClient(endpoint({ url, basicAuth: { username: 'desync', passwordFile: pw } })).alerts()).toEqual([]);
    await writeFile(pw, 'wrong');
    const e = await rejection(createPrometheusClient(endpoint({ url, basicAuth: { username: 'desync', passwordFile: pw } })).alerts());
    expect(e.code).toBe('E_PROMETHEUS_HTTP');
    expect(e.details).toMatchObject({ status: 401, transient: false });
    expect(e.message).toMatch(/HTTP 401 Unauthorized \(GET \/api\/v1\/alerts\): Unauthorized/);
    expect(e.message).not.toMatch(/wrong/);
  });

  it('a missing credential file is a credentials error naming the file, and nothing is sent', async () => {
    let hits = 0;
    const url = await serve((_req, _body, res) => {
      hits++;
      res.writeHead(200).end(OK_VECTOR);
    });
    const missing = path.join(dir, 'no-such-token');
    const e = await rejection(createPrometheusClient(endpoint({ url, bearerTokenFile: missing })).query('up'));
    expect(e.code).toBe('E_PROMETHEUS_CREDENTIALS');
    expect(e.message).toContain(`cannot read bearerTokenFile ${missing}: ENOENT`);
    expect(e.cause).toMatchObject({ code: 'ENOENT' });
    expect(hits).toBe(0);
  });

  it('a proxy error page (502, HTML) is an HTTP error that may pass; a Prometheus overload answer is a transient query error', async () => {
    const proxy = await serve((_req, _body, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<html><body><h1>502 Bad Gateway</h1></body></html>'));
    const e = await rejection(createPrometheusClient(endpoint(proxy)).query('up'));
    expect(e.code).toBe('E_PROMETHEUS_HTTP');
    expect(e.details).toMatchObject({ status: 502, transient: true });
    expect(e.message).toContain('502 Bad Gateway');
    const busy = await serve((_req, _body, res) => res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'error', errorType: 'unavailable', error: 'too many queries' })));
    const b = await rejection(createPrometheusClient(endpoint(busy)).query('up'));
    expect(b.code).toBe('E_PROMETHEUS_QUERY');
    expect(b.details).toMatchObject({ errorType: 'unavailable', transient: true });
  });

  it('a 200 that is not the Prometheus API (a login page, a wrong shape) is a response error', async () => {
    const html = await serve((_req, _body, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>Sign in</html>'));
    const e = await rejection(createPrometheusClient(endpoint(html)).query('up'));
    expect(e.code).toBe('E_PROMETHEUS_RESPONSE');
    expect(e.message).toMatch(/answer is not JSON .*Sign in/);
    expect(e.cause).toBeInstanceOf(SyntaxError);
    const shape = await serve((_req, _body, res) => res.writeHead(200).end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: { a: 1 }, value: [1, '1'] }] } })));
    expect((await rejection(createPrometheusClient(endpoint(shape)).query('up'))).message).toMatch(/unexpected label a/);
  });

  it('nothing listening is unreachable (transient), with the connection error as its cause', async () => {
    const port = await freePort();
    const e = await rejection(createPrometheusClient(endpoint(`http://127.0.0.1:${port}`)).query('up'));
    expect(e.code).toBe('E_PROMETHEUS_UNREACHABLE');
    expect(e.details).toMatchObject({ transient: true, reason: 'connection', errno: 'ECONNREFUSED' });
    expect(e.message).toMatch(/unreachable: connect ECONNREFUSED/);
    expect(isTransientPrometheusError(e)).toBe(true);
  });

  it('a server that never answers costs the timeout, not more', async () => {
    const url = await serve(() => undefined);
    const t0 = Date.now();
    const e = await rejection(createPrometheusClient(endpoint({ url, timeout: '1s' })).query('up'));
    expect(e.code).toBe('E_PROMETHEUS_UNREACHABLE');
    expect(e.details).toMatchObject({ reason: 'timeout', transient: true });
    expect(e.message).toMatch(/no answer within 1s \(POST \/api\/v1\/query\)/);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });
});

const withOpenssl = requireTools('openssl');

describe.skipIf(!withOpenssl)('TLS with a private CA (caFile)', () => {
  let dir = '';
  let url = '';

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'nixos-desync-promclient-tls-'));
    const run = (args: string[]): void => {
      const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 20_000 });
      if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
    };
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=test prometheus CA']);
    run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
    await writeFile(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf']);
    const s = createHttpsServer({ key: await readFile(path.join(dir, 'server.key')), cert: await readFile(path.join(dir, 'server.pem')) }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(OK_VECTOR);
    });
    servers.push(s);
    url = `https://127.0.0.1:${await listen(s)}`;
  }, 30_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('trusts the server through caFile', async () => {
    expect(await createPrometheusClient(endpoint({ url, caFile: path.join(dir, 'ca.pem') })).queryVector('up')).toHaveLength(1);
  });

  it('without caFile the certificate is not trusted: unreachable, reason tls', async () => {
    const e = await rejection(createPrometheusClient(endpoint(url)).queryVector('up'));
    expect(e.code).toBe('E_PROMETHEUS_UNREACHABLE');
    expect(e.details).toMatchObject({ reason: 'tls' });
    expect(e.message).toMatch(/self[- ]signed|unable to verify|issuer/i);
  });

  it('a caFile that cannot be read is a credentials error', async () => {
    const e = await rejection(createPrometheusClient(endpoint({ url, caFile: path.join(dir, 'nope.pem') })).queryVector('up'));
    expect(e.code).toBe('E_PROMETHEUS_CREDENTIALS');
    expect(e.message).toContain('cannot read caFile');
  });
});
