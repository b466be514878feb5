// Every endpoint through supertest, the landing page's escaping, and serve()'s lifecycle.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { escapeHtml } from '../../src/http/landing.js';
import { isLoopbackHost, landingDetailsAllowed, parseListenAddress, serve } from '../../src/http/serve.js';
import type { WebConfig } from '../../src/http/web-config.js';
import { isDesyncError } from '../../src/util/errors.js';
import { buildFixtureHost, FIXTURE_NOW, type FixtureHost } from '../fixtures/exporter/build.js';
import { startTestExporter, type StartedExporter, stopFixture } from '../fixtures/exporter/start.js';

let host: FixtureHost | undefined;
let exp: StartedExporter | undefined;
afterEach(async () => {
  await stopFixture(exp, host);
  [exp, host] = [undefined, undefined];
});

describe('endpoints', () => {
  it('/metrics answers with the Prometheus text content type', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    const res = await request(exp.server).get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.text).toMatch(/^nixos_desync_build_info\{version="[^"]+"\} 1$/m);
    const head = await request(exp.server).head('/metrics');
    expect(head.status).toBe(200);
  });

  it('/healthz answers ok', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    const res = await request(exp.server).get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'ok' });
  });

  it('/ shows pins, lag against budget, the last run and a link to /metrics, all escaped', async () => {
    host = await buildFixtureHost({ pr: true });
    exp = await startTestExporter(host.config, { now: () => FIXTURE_NOW });
    await exp.exporter.metrics();
    const res = await request(exp.server).get('/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    const html = res.text;
    expect(html).toContain('<a href="metrics">');
    expect(html).toMatch(/<td>lagging<\/td>.*<td>2 \/ 4<\/td>/);
    expect(html).toMatch(/<td>breached<\/td>.*BREACHED/);
    expect(html).toMatch(/<td>nopin<\/td>.*<td>0 \/ ∞<\/td>/);
    expect(html).toContain('retired (removed)');
    expect(html).toContain('breach at 2026-01-10T04:00:00.000Z');
    expect(html).toContain('activation pending');
    expect(html).toContain('reboot required');
    // The revision `<b>c0ffee"0</b>` from state.json is shown as text, never as markup.
    expect(html).not.toContain('<b>c0ffee');
    expect(html).toContain('&lt;b&gt;c0ffee&quot;0&lt;/b&gt;');
    // Problems: the corrupt history, the file moved aside, the broken PR file.
    expect(html).toMatch(/history\.json: not valid JSON/);
    expect(html).toContain('state.json.corrupt-20260105T040000000Z');
    expect(html).toMatch(/collector pr_compat: .*broken\.nix/);
  });

  it('/ on a listener other hosts can reach, without auth: problems are named, but no error excerpt or file path', async () => {
    host = await buildFixtureHost({ pr: true });
    exp = await startTestExporter(host.config, { now: () => FIXTURE_NOW, listenAddress: '0.0.0.0:0' });
    await exp.exporter.metrics();
    const html = (await request(exp.server).get('/')).text;
    // Still a useful status page: desyncs, breach, last run result.
    expect(html).toMatch(/<td>breached<\/td>.*BREACHED/);
    expect(html).toContain('breach at 2026-01-10T04:00:00.000Z');
    // No error excerpt of the last run, no file path, no collector error text.
    expect(html).not.toContain('desync breached breached its budget');
    expect(html).not.toContain(host.dir);
    expect(html).not.toMatch(/history\.json|state\.json|broken\.nix|not valid JSON/);
    expect(html).toContain('(details hidden)');
    expect(html).toContain('collector pr_compat is failing');
    expect(html).toMatch(/shown only on a loopback-only or authenticated listener/);
  });

  it('/ on a reachable listener with basic auth shows the details to authenticated users', async () => {
    host = await buildFixtureHost({ pr: true });
    const hash = '$2b$04$exCXiwI.2FrgOjA6ki.MSuUdOxHj4I6QKIohl3PoREihkY7TdR6T2'; // "pw"
    await writeFile(join(host.dir, 'web.yml'), `basic_auth_users:\n  prometheus: ${hash}\n`);
    exp = await startTestExporter(host.config, { now: () => FIXTURE_NOW, listenAddress: '0.0.0.0:0', webConfigFile: join(host.dir, 'web.yml') });
    await exp.exporter.metrics();
    const anon = await request(exp.server).get('/');
    expect(anon.status).toBe(401);
    expect(anon.text).not.toContain('budget');
    const html = (await request(exp.server).get('/').auth('prometheus', 'pw')).text;
    expect(html).toContain('desync breached breached its budget');
    expect(html).toMatch(/history\.json: not valid JSON/);
  });

  it('landing details: loopback-only or authenticated listeners only', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', 'localhost']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of [undefined, '0.0.0.0', '::', '192.168.1.5', '::ffff:10.0.0.1', 'host.example.org', '128.0.0.1']) expect(isLoopbackHost(h), String(h)).toBe(false);
    const tls = (clientAuth: string): WebConfig => ({ users: new Map(), tls: { clientAuth } } as unknown as WebConfig);
    expect(landingDetailsAllowed('0.0.0.0', null)).toBe(false);
    expect(landingDetailsAllowed('0.0.0.0', tls('RequireAnyClientCert'))).toBe(false); // anyone can make a certificate
    expect(landingDetailsAllowed('0.0.0.0', tls('RequireAndVerifyClientCert'))).toBe(true);
    expect(landingDetailsAllowed('0.0.0.0', { users: new Map([['p', 'h']]), tls: null } as unknown as WebConfig)).toBe(true);
    expect(landingDetailsAllowed('127.0.0.1', null)).toBe(true);
  });

  it('unknown paths are 404 and nothing accepts writes', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    expect((await request(exp.server).get('/nope')).status).toBe(404);
    const post = await request(exp.server).post('/metrics').send('x');
    expect([post.status, post.headers.allow]).toEqual([405, 'GET, HEAD']);
  });

  it('escapeHtml escapes the five HTML metacharacters', () => {
    expect(escapeHtml(`<a href="x" onclick='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });
});

describe('serve()', () => {
  it('listens, serves, and returns 0 after the abort signal; everything is stopped', async () => {
    host = await buildFixtureHost();
    const ac = new AbortController();
    const lines: string[] = [];
    let url = '';
    const done = serve(host.config, {
      listenAddress: '127.0.0.1:0',
      io: { stdout: () => undefined, stderr: (s) => void lines.push(s), env: {} },
      signal: ac.signal,
      model: { rescanIntervalMs: 0 },
      onListening: (u) => void (url = u),
    });
    while (!url) await new Promise((r) => setTimeout(r, 10));
    const res = await fetch(`${url}metrics`);
    expect(res.status).toBe(200);
    ac.abort();
    expect(await done).toBe(0);
    await expect(fetch(`${url}metrics`)).rejects.toThrow();
    const logs = lines.join('').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: string });
    expect(logs.map((l) => l.msg)).toEqual(expect.arrayContaining(['listening', 'shutting down', 'stopped']));
  });

  it('serves with --web.config.file (basic auth here; TLS and the rest in security.test.ts)', async () => {
    host = await buildFixtureHost();
    const hash = '$2b$04$exCXiwI.2FrgOjA6ki.MSuUdOxHj4I6QKIohl3PoREihkY7TdR6T2'; // "pw"
    await writeFile(join(host.dir, 'web.yml'), `basic_auth_users:\n  prometheus: ${hash}\n`);
    exp = await startTestExporter(host.config, { webConfigFile: join(host.dir, 'web.yml') });
    expect((await request(exp.server).get('/metrics')).status).toBe(401);
    expect((await request(exp.server).get('/metrics').auth('prometheus', 'pw')).status).toBe(200);
  });

  it('refuses an invalid --web.config.file (E_WEB_CONFIG) before listening', async () => {
    host = await buildFixtureHost();
    await writeFile(join(host.dir, 'web.yml'), 'basic_auth_users:\n  prometheus: not-a-hash\n');
    const err = await serve(host.config, { webConfigFile: join(host.dir, 'web.yml'), io: { stdout: () => undefined, stderr: () => undefined, env: {} } }).catch((e: unknown) => e);
    expect(isDesyncError(err, 'E_WEB_CONFIG')).toBe(true);
    expect((err as Error).message).toMatch(/basic_auth_users\.prometheus: not a bcrypt hash/);
  });

  it('reports an address in use as a run failure (E_LISTEN → exit 1), not a usage error', async () => {
    host = await buildFixtureHost();
    exp = await startTestExporter(host.config);
    const port = (exp.server.address() as { port: number }).port;
    const err = await startTestExporter(host.config, { listenAddress: `127.0.0.1:${port}` }).catch((e: unknown) => e);
    expect(isDesyncError(err, 'E_LISTEN')).toBe(true);
    expect(String((err as Error).message)).toMatch(/EADDRINUSE/);
  });

  it('parses listen addresses', () => {
    expect(parseListenAddress('127.0.0.1:9793')).toEqual({ host: '127.0.0.1', port: 9793 });
    expect(parseListenAddress('[::1]:9793')).toEqual({ host: '::1', port: 9793 });
    expect(parseListenAddress(':9793')).toEqual({ host: undefined, port: 9793 });
    expect(() => parseListenAddress('9793')).toThrow(/host:port/);
    expect(() => parseListenAddress('a:70000')).toThrow(/host:port/);
  });
});
