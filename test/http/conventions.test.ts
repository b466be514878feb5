// node_exporter's conventions for `serve`: OpenMetrics only when the scraper asks for it, gzip
// when it accepts it, `--web.max-requests` (503 beyond, default 40, 0 = no limit) and
// `--web.disable-exporter-metrics` — and a real Prometheus scrapes it (it asks for both).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import bcrypt from 'bcryptjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { BcryptCompare } from '../../src/http/basic-auth.js';
import { main } from '../../src/cli/main.js';
import { buildFixtureHost, FIXTURE_NOW, type FixtureHost } from '../fixtures/exporter/build.js';
import { startTestExporter, stopFixture, waitFor, type StartedExporter } from '../fixtures/exporter/start.js';
import { startPrometheus, type StartedPrometheus } from '../helpers/prometheus.js';
import { basic } from './client.js';
import { requireTools } from '../helpers/tools.js';

let host: FixtureHost | undefined;
let exp: StartedExporter | undefined;
let prom: StartedPrometheus | undefined;
afterEach(async () => {
  await prom?.stop();
  await stopFixture(exp, host);
  [exp, host, prom] = [undefined, undefined, undefined];
});

/** One GET with exactly these headers; the body as sent (not decompressed). */
function raw(url: string, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A fixture exporter whose rendering stays the same between requests (fixed clock, long cache). */
async function steadyExporter(): Promise<StartedExporter> {
  host = await buildFixtureHost();
  exp = await startTestExporter(host.config, { now: () => FIXTURE_NOW, metricsCacheMs: 60_000 });
  return exp;
}

describe('format and encoding of /metrics', () => {
  it('text 0.0.4 by default; OpenMetrics when Accept prefers it, with the same samples', async () => {
    const e = await steadyExporter();
    const text = await raw(`${e.url}metrics`, {});
    expect(text.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(text.body.toString()).toMatch(/^# TYPE nixos_desync_runs_total counter$/m);
    const om = await raw(`${e.url}metrics`, { Accept: 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5' });
    expect(om.headers['content-type']).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    const omText = om.body.toString();
    expect(omText.endsWith('# EOF\n')).toBe(true);
    expect(omText).toMatch(/^# TYPE nixos_desync_runs counter$/m);
    const samples = (s: string) => s.split('\n').filter((l) => l !== '' && !l.startsWith('#')).sort();
    expect(samples(omText)).toEqual(samples(text.body.toString()));
    expect(om.headers.vary).toBe('Accept, Accept-Encoding');
  });

  it('gzip when Accept-Encoding allows it: the same body, compressed; identity otherwise', async () => {
    const e = await steadyExporter();
    const plain = await raw(`${e.url}metrics`, { 'Accept-Encoding': 'identity' });
    expect(plain.headers['content-encoding']).toBeUndefined();
    const gz = await raw(`${e.url}metrics`, { 'Accept-Encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(Number(gz.headers['content-length'])).toBe(gz.body.length);
    expect(gz.body.length).toBeLessThan(plain.body.length / 3);
    expect(gunzipSync(gz.body).toString()).toBe(plain.body.toString());
    const both = await raw(`${e.url}metrics`, { 'Accept-Encoding': 'gzip', Accept: 'application/openmetrics-text' });
    expect(gunzipSync(both.body).toString()).toMatch(/# EOF\n$/);
  });
});

describe('--web.max-requests', () => {
  /** An exporter whose basic-auth checks wait until released: requests stay in flight. */
  async function heldExporter(maxRequests: number | undefined) {
    host = await buildFixtureHost();
    const web = join(host.dir, 'web.yml');
    await writeFile(web, `basic_auth_users:\n  alice: ${bcrypt.hashSync('pw', 4)}\n`);
    const held: Array<() => void> = [];
    const compare: BcryptCompare = () => new Promise((r) => held.push(() => r(true)));
    exp = await startTestExporter(host.config, { webConfigFile: web, bcryptCompare: compare, ...(maxRequests === undefined ? {} : { maxRequests }) });
    const auth = { Authorization: basic('alice', 'pw') };
    const e = exp;
    return {
      e,
      send: (n: number) => Array.from({ length: n }, () => raw(`${e.url}metrics`, auth)),
      release: () => setInterval(() => held.splice(0).forEach((f) => f()), 5),
    };
  }

  it.each([
    [undefined, 40],
    [2, 2],
  ])('--web.max-requests %s: %i requests in flight, the next one is answered 503 at once', async (max, limit) => {
    const { e, send, release } = await heldExporter(max);
    const pending = send(limit);
    await waitFor(() => e.guard.inFlight, (n) => n === limit, 5_000);
    const [over] = send(1);
    expect((await over!).status).toBe(503);
    const timer = release();
    try {
      expect(new Set((await Promise.all(pending)).map((r) => r.status))).toEqual(new Set([200]));
    } finally {
      clearInterval(timer);
    }
    expect([e.guard.peakInFlight, e.guard.rejected.in_flight]).toEqual([limit, 1]);
  });

  it('--web.max-requests 0: no limit (45 requests in flight at once, none refused)', async () => {
    const { e, send, release } = await heldExporter(0);
    const pending = send(45);
    await waitFor(() => e.guard.inFlight, (n) => n === 45, 5_000);
    const timer = release();
    try {
      expect(new Set((await Promise.all(pending)).map((r) => r.status))).toEqual(new Set([200]));
    } finally {
      clearInterval(timer);
    }
    expect(e.guard.rejected.in_flight).toBe(0);
  });

  it('a value that is not a whole number is a usage error (exit 64) naming the flag', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nixos-desync-maxreq-'));
    try {
      await writeFile(join(dir, 'config.json'), JSON.stringify({ stateDir: join(dir, 'state') }));
      const err: string[] = [];
      const code = await main(['serve', '--config', join(dir, 'config.json'), '--web.max-requests=1.5'], { stdout: () => undefined, stderr: (s) => void err.push(s), env: {} });
      expect(code).toBe(64);
      expect(err.join('')).toMatch(/--web\.max-requests "1.5": a whole number/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('--web.disable-exporter-metrics', () => {
  it('drops every process_/nodejs_ series and keeps the nixos_desync_ ones', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    expect(await (await fetch(`${exp.url}metrics`)).text()).toMatch(/^process_cpu_seconds_total /m);
    await exp.close();
    exp = await startTestExporter(host.config, { exporterMetrics: false });
    const text = await (await fetch(`${exp.url}metrics`)).text();
    expect(text).not.toMatch(/^(# \w+ )?(process|nodejs)_/m);
    expect(text).toMatch(/^nixos_desync_build_info\{/m);
    expect(text).toMatch(/^nixos_desync_runs_total\{/m);
  });
});

describe.skipIf(!requireTools('prometheus'))('a real Prometheus scrape', () => {
  it('Prometheus 2.42 asks for OpenMetrics and gzip, and stores every sample under its own name', async () => {
    const e = await steadyExporter();
    const seen: Array<{ accept?: string; encoding?: string }> = [];
    e.server.on('request', (req: { url?: string; headers: Record<string, string | undefined> }) => {
      if (req.url?.startsWith('/metrics')) seen.push({ accept: req.headers.accept, encoding: req.headers['accept-encoding'] });
    });
    const text = (await raw(`${e.url}metrics`, {})).body.toString();
    seen.length = 0;
    const dir = await mkdtemp(join(tmpdir(), 'nixos-desync-om-prom-'));
    try {
      const target = new URL(e.url).host;
      prom = await startPrometheus(dir, `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: desync\n    static_configs:\n      - targets: ["${target}"]\n`);
      const q = async (expr: string) => ((await (await fetch(`${prom!.url}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } }).data.result;
      const { value: up } = await waitFor(() => q('up{job="desync"}'), (r) => r.length === 1, 20_000);
      expect(up[0]!.value[1]).toBe('1');
      expect(seen[0]!.accept).toMatch(/^application\/openmetrics-text/);
      expect(seen[0]!.encoding).toMatch(/gzip/);
      // Every sample of the text format arrived, counters under their _total names.
      const expected = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
      expect(Number((await q('scrape_samples_scraped{job="desync"}'))[0]!.value[1])).toBe(expected);
      expect((await q('nixos_desync_runs_total{job="desync"}')).length).toBeGreaterThan(0);
      expect(await q('nixos_desync_runs{job="desync"}')).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
