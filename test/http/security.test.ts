// The exporter behind `--web.config.file`: TLS (versions, client certificates per
// client_auth_type, SANs), basic auth (401, decoy comparisons for unknown users, the
// (user, hash, password) cache), configured headers on every response, and the hardening that
// applies with or without a web config (GET/HEAD only, no bodies, bounded URLs and headers, the
// in-flight cap, the rate limit, slow-client timeouts).
import { connect as netConnect } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { BcryptCompare } from '../../src/http/basic-auth.js';
import { parseSubjectAltName } from '../../src/http/guard.js';
import type { ServeOptions } from '../../src/http/serve.js';
import { buildFixtureHost, type FixtureHost } from '../fixtures/exporter/build.js';
import { startTestExporter, waitFor, type StartedExporter } from '../fixtures/exporter/start.js';
import { basic, CORPUS, get, refused } from './client.js';

const TLS = `tls_server_config:\n  cert_file: ${CORPUS}/server.crt\n  key_file: ${CORPUS}/server.key\n`;
// Cost 4 and 5 keep the suite fast; the decoy takes the highest configured cost.
const ALICE = bcrypt.hashSync('alice-pw', 4);
const BOB = bcrypt.hashSync('bob-pw', 5).replace(/^\$2b\$/, '$2y$'); // htpasswd writes $2y$
const USERS = `basic_auth_users:\n  alice: ${ALICE}\n  bob: ${BOB}\n`;
const HEADERS = 'http_server_config:\n  headers:\n    X-Frame-Options: deny\n    X-Content-Type-Options: nosniff\n    Content-Security-Policy: "default-src \'none\'"\n';

let host: FixtureHost;
let dir: string;
let exp: StartedExporter | undefined;
beforeAll(async () => {
  host = await buildFixtureHost();
  dir = await mkdtemp(join(tmpdir(), 'nixos-desync-websec-'));
});
afterAll(async () => {
  await host?.cleanup();
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await exp?.close();
  exp = undefined;
});

let n = 0;
async function start(yaml: string | null, opts: Partial<ServeOptions> = {}): Promise<StartedExporter> {
  let webConfigFile: string | undefined;
  if (yaml !== null) {
    webConfigFile = join(dir, `web-${++n}.yml`);
    await writeFile(webConfigFile, yaml);
  }
  exp = await startTestExporter(host.config, { webConfigFile, ...opts });
  return exp;
}

/** A bcrypt comparator that records what it was asked. */
function counting(): { compare: BcryptCompare; calls: Array<{ password: string; hash: string }> } {
  const calls: Array<{ password: string; hash: string }> = [];
  return { calls, compare: (password, hash) => (calls.push({ password, hash }), bcrypt.compare(password, hash)) };
}

describe('TLS', () => {
  it('serves /metrics over TLS 1.3 by default; plain HTTP on the same port gets no answer', async () => {
    const e = await start(TLS);
    expect(e.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    const r = await get(`${e.url}metrics`);
    expect(r.status).toBe(200);
    expect(r.protocol).toBe('TLSv1.3');
    expect(r.body).toMatch(/^nixos_desync_build_info\{version="[^"]+"\} 1$/m);
    const plain = await get(e.url.replace('https:', 'http:') + 'metrics').catch((err: Error) => err);
    expect(plain instanceof Error ? plain.message : `HTTP ${plain.status}`).not.toMatch(/^HTTP 200/);
  });

  it('honours min_version and max_version', async () => {
    const e = await start(`${TLS}  max_version: TLS12\n`);
    expect((await get(`${e.url}healthz`)).protocol).toBe('TLSv1.2');
    await e.close();
    const e13 = await start(`${TLS}  min_version: TLS13\n`);
    await refused(`${e13.url}healthz`, { maxVersion: 'TLSv1.2' });
    expect((await get(`${e13.url}healthz`)).protocol).toBe('TLSv1.3');
  });

  it('RequireAndVerifyClientCert: no certificate and a certificate from another CA are refused; the right one is served', async () => {
    const e = await start(`${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ${CORPUS}/client_selfsigned.pem\n`);
    await refused(`${e.url}metrics`);
    await refused(`${e.url}metrics`, { clientCert: 'client2_selfsigned' });
    await refused(`${e.url}metrics`, { clientCert: 'server' });
    expect((await get(`${e.url}metrics`, { clientCert: 'client_selfsigned' })).status).toBe(200);
  });

  it('RequireAnyClientCert: any certificate, but one is required', async () => {
    const e = await start(`${TLS}  client_auth_type: RequireAnyClientCert\n`);
    await refused(`${e.url}metrics`);
    expect((await get(`${e.url}metrics`, { clientCert: 'client2_selfsigned' })).status).toBe(200);
  });

  it('VerifyClientCertIfGiven: no certificate is fine, an unverifiable one is refused', async () => {
    const e = await start(`${TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ${CORPUS}/client_selfsigned.pem\n`);
    expect((await get(`${e.url}metrics`)).status).toBe(200);
    expect((await get(`${e.url}metrics`, { clientCert: 'client_selfsigned' })).status).toBe(200);
    await refused(`${e.url}metrics`, { clientCert: 'client2_selfsigned' });
    expect(e.guard.rejected.client_cert).toBeGreaterThanOrEqual(1);
  });

  it('VerifyClientCertIfGiven without client_ca_file never trusts the system CAs: any certificate is refused', async () => {
    const e = await start(`${TLS}  client_auth_type: VerifyClientCertIfGiven\n`);
    expect((await get(`${e.url}metrics`)).status).toBe(200);
    await refused(`${e.url}metrics`, { clientCert: 'server' });
  });

  it('client_allowed_sans: a verified certificate must also carry an allowed SAN', async () => {
    const good = await start(`${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ${CORPUS}/client2_selfsigned.pem\n  client_allowed_sans: [one, test3]\n`);
    expect((await get(`${good.url}metrics`, { clientCert: 'client2_selfsigned' })).status).toBe(200);
    await good.close();
    const bad = await start(`${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ${CORPUS}/client2_selfsigned.pem\n  client_allowed_sans: [bad]\n`);
    await refused(`${bad.url}metrics`, { clientCert: 'client2_selfsigned' });
  });

  it('client_allowed_sans with RequireAnyClientCert is refused at start (exit 78) and by check-config; a self-signed certificate with an allowed SAN never gets in', async () => {
    // client2_selfsigned.pem is self-signed and carries the SAN "test3": anyone can make one.
    const any = join(dir, 'sans-any.yml');
    await writeFile(any, `${TLS}  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: [test3]\n`);
    const cfg = join(dir, 'sans-config.json');
    await writeFile(cfg, JSON.stringify({ stateDir: host.stateDir, profilesDir: host.profilesDir, runDir: host.runDir, exporter: { listenAddress: '127.0.0.1:0', webConfigFile: any } }));
    for (const args of [['serve', '--config', cfg], ['check-config', '--config', cfg]]) {
      const err: string[] = [];
      const code = await main(args, { stdout: () => undefined, stderr: (s) => void err.push(s), env: {} });
      expect(code, args[0]).toBe(78);
      expect(err.join(''), args[0]).toMatch(/tls_server_config\.client_allowed_sans: requires client_auth_type RequireAndVerifyClientCert/);
    }
    // With verification, the same self-signed certificate (allowed SAN, unknown issuer) is refused,
    // while a certificate the configured CA vouches for is checked for its SAN.
    const e = await start(`${TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ${CORPUS}/client_selfsigned.pem\n  client_allowed_sans: [test3]\n`);
    await refused(`${e.url}metrics`, { clientCert: 'client2_selfsigned' });
    await refused(`${e.url}metrics`, { clientCert: 'client_selfsigned' }); // trusted, but no allowed SAN
  });

  it('parses the SAN forms Node prints', () => {
    expect(parseSubjectAltName('DNS:test3, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, email:a@b.c, URI:spiffe://x/y, DNS:"a, b"'))
      .toEqual(['test3', '127.0.0.1', '0:0:0:0:0:0:0:1', 'a@b.c', 'spiffe://x/y', 'a, b']);
  });

  it('an invalid web config stops `serve` with exit 78 and names the field', async () => {
    const f = join(dir, 'bad.yml');
    await writeFile(f, `${TLS}  min_version: TLS111\n`);
    const cfg = join(dir, 'config.json');
    await writeFile(cfg, JSON.stringify({ stateDir: host.stateDir, profilesDir: host.profilesDir, runDir: host.runDir, exporter: { listenAddress: '127.0.0.1:0' } }));
    const err: string[] = [];
    const code = await main(['serve', '--config', cfg, '--web.config.file', f], { stdout: () => undefined, stderr: (s) => void err.push(s), env: {} });
    expect(code).toBe(78);
    expect(err.join('')).toMatch(/--web\.config\.file .*bad\.yml: tls_server_config\.min_version: unknown TLS version "TLS111"/);
  });
});

describe('basic auth', () => {
  it('no or wrong credentials: 401 with WWW-Authenticate: Basic; the right ones: 200', async () => {
    const c = counting();
    const e = await start(`${TLS}${USERS}`, { bcryptCompare: c.compare });
    for (const headers of [{}, { Authorization: 'Bearer x' }, { Authorization: 'Basic !!!' }, { Authorization: basic('alice', 'wrong') }, { Authorization: basic('alice', '') }]) {
      const r = await get(`${e.url}metrics`, { headers });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Basic');
      expect(r.body).not.toContain('nixos_desync');
    }
    expect((await get(`${e.url}metrics`, { headers: { Authorization: basic('alice', 'alice-pw') } })).status).toBe(200);
    expect((await get(`${e.url}metrics`, { headers: { Authorization: basic('bob', 'bob-pw') } })).status).toBe(200); // a $2y$ hash
    // Malformed headers cost nothing; each well-formed attempt costs one comparison.
    expect(c.calls.length).toBe(4);
  });

  it('works without TLS too (basic_auth_users only)', async () => {
    const e = await start(USERS);
    expect(e.url).toMatch(/^http:/);
    expect((await get(`${e.url}metrics`)).status).toBe(401);
    expect((await get(`${e.url}metrics`, { headers: { Authorization: basic('alice', 'alice-pw') } })).status).toBe(200);
  });

  it('an unknown user costs one bcrypt comparison, like a known user with a wrong password, at the highest configured cost', async () => {
    const c = counting();
    const e = await start(`${TLS}${USERS}`, { bcryptCompare: c.compare });
    const known = await get(`${e.url}metrics`, { headers: { Authorization: basic('alice', 'guess') } });
    const unknown = await get(`${e.url}metrics`, { headers: { Authorization: basic('mallory', 'guess') } });
    expect([known.status, unknown.status]).toEqual([401, 401]);
    expect(known.headers['www-authenticate']).toBe(unknown.headers['www-authenticate']);
    expect(known.body).toBe(unknown.body);
    expect(c.calls).toEqual([{ password: 'guess', hash: ALICE }, { password: 'guess', hash: e.auth!.decoyHash }]);
    expect(e.auth!.decoyHash).toMatch(/^\$2b\$05\$[./A-Za-z0-9]{53}$/);
    // The decoy is never a way in, whatever the password.
    expect(await bcrypt.compare('guess', e.auth!.decoyHash)).toBe(false);
  });

  it('caches by (user, hash, password): a repeat costs nothing, a wrong password after a success is still refused (CVE-2022-46146)', async () => {
    const c = counting();
    const e = await start(`${TLS}${USERS}`, { bcryptCompare: c.compare });
    const ok = { Authorization: basic('alice', 'alice-pw') };
    expect((await get(`${e.url}metrics`, { headers: ok })).status).toBe(200);
    expect((await get(`${e.url}metrics`, { headers: ok })).status).toBe(200);
    expect(c.calls.length).toBe(1);
    expect(e.auth!.stats.cacheHits).toBe(1);
    expect((await get(`${e.url}metrics`, { headers: { Authorization: basic('alice', 'alice-pw-not') } })).status).toBe(401);
    expect((await get(`${e.url}metrics`, { headers: { Authorization: basic('bob', 'alice-pw') } })).status).toBe(401);
    // An unknown user with a password that is cached for a known one is still unknown.
    expect((await get(`${e.url}metrics`, { headers: { Authorization: basic('alice2', 'alice-pw') } })).status).toBe(401);
    expect(c.calls.length).toBe(4);
    // Failures are cached too: repeating a wrong guess costs nothing more.
    expect((await get(`${e.url}metrics`, { headers: { Authorization: basic('bob', 'alice-pw') } })).status).toBe(401);
    expect(c.calls.length).toBe(4);
  });

  it('the cache is bounded, and concurrent identical attempts share one comparison', async () => {
    const c = counting();
    const e = await start(`${TLS}${USERS}`, { bcryptCompare: c.compare, authCacheSize: 3 });
    for (let i = 0; i < 8; i++) await get(`${e.url}healthz`, { headers: { Authorization: basic('alice', `guess-${i}`) } });
    expect(e.auth!.stats.cacheSize).toBe(3);
    expect(c.calls.length).toBe(8);
    const same = await Promise.all(Array.from({ length: 5 }, () => get(`${e.url}healthz`, { headers: { Authorization: basic('bob', 'bob-pw') } })));
    expect(same.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    expect(c.calls.length).toBe(9);
  });
});

describe('headers, methods, sizes', () => {
  it('configured headers are on every response: 200, 401, 404, 405', async () => {
    const e = await start(`${TLS}${USERS}${HEADERS}`);
    const auth = { Authorization: basic('alice', 'alice-pw') };
    const answers = [
      await get(`${e.url}metrics`, { headers: auth }),
      await get(`${e.url}`, { headers: auth }),
      await get(`${e.url}metrics`),
      await get(`${e.url}nope`, { headers: auth }),
      await get(`${e.url}metrics`, { method: 'POST', headers: auth }),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 200, 401, 404, 405]);
    for (const r of answers) {
      expect(r.headers['x-frame-options']).toBe('deny');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['content-security-policy']).toBe("default-src 'none'");
    }
  });

  it('only GET and HEAD: every other method is 405 with Allow, before auth and without reading a body', async () => {
    const c = counting();
    const e = await start(`${TLS}${USERS}`, { bcryptCompare: c.compare });
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE']) {
      const r = await get(`${e.url}metrics`, { method, headers: { Authorization: basic('alice', 'alice-pw') } });
      expect([method, r.status, r.headers.allow]).toEqual([method, 405, 'GET, HEAD']);
    }
    expect(c.calls.length).toBe(0);
    const head = await get(`${e.url}metrics`, { method: 'HEAD', headers: { Authorization: basic('alice', 'alice-pw') } });
    expect([head.status, head.body]).toEqual([200, '']);
  });

  it('without a web config too: 405, 413 for a body, 414 for a long URL, 431 for large headers', async () => {
    const e = await start(null);
    expect(e.url).toMatch(/^http:/);
    expect((await get(`${e.url}metrics`, { method: 'POST', body: 'x' })).status).toBe(405);
    const withBody = await get(`${e.url}metrics`, { headers: { 'Content-Type': 'text/plain', 'Content-Length': '100' }, body: 'x'.repeat(100) });
    expect([withBody.status, withBody.headers.connection]).toEqual([413, 'close']);
    expect((await get(`${e.url}metrics?${'a'.repeat(3000)}`)).status).toBe(414);
    expect((await get(`${e.url}metrics`, { headers: { 'X-Big': 'b'.repeat(9000) } })).status).toBe(431);
    expect((await get(`${e.url}metrics`)).status).toBe(200);
    expect(e.guard.rejected).toMatchObject({ method: 1, body: 1, url_too_long: 1 });
  });
});

describe('load limits and slow clients', () => {
  it('answers 503 beyond the in-flight cap, and serves again once requests finish', async () => {
    // Comparisons are held until released, so requests stay in flight for as long as we like.
    const held: Array<() => void> = [];
    const compare: BcryptCompare = (pw, hash) => new Promise((r) => held.push(() => void bcrypt.compare(pw, hash).then(r)));
    const e = await start(`${TLS}${USERS}`, { bcryptCompare: compare, limits: { maxInFlight: 3 } });
    const pending = [1, 2, 3].map((i) => get(`${e.url}metrics`, { headers: { Authorization: basic('alice', i === 1 ? 'alice-pw' : `x${i}`) } }));
    while (e.guard.inFlight < 3) await new Promise((r) => setTimeout(r, 5));
    const over = await get(`${e.url}metrics`, { headers: { Authorization: basic('alice', 'alice-pw') } });
    expect([over.status, over.headers['retry-after']]).toEqual([503, '1']);
    expect(e.guard.rejected.in_flight).toBe(1);
    // Comparisons run one at a time: release them as they come.
    const release = setInterval(() => held.shift()?.(), 5);
    try {
      expect((await Promise.all(pending)).map((r) => r.status)).toEqual([200, 401, 401]);
      await waitFor(() => e.guard.inFlight, (v) => v === 0); // 'finish' may come just after the client read it all
      expect((await get(`${e.url}metrics`, { headers: { Authorization: basic('alice', 'alice-pw') } })).status).toBe(200);
    } finally {
      clearInterval(release);
    }
    expect(e.guard.peakInFlight).toBe(3);
  });

  it('rate_limit: beyond the burst, 429', async () => {
    const e = await start(`${TLS}rate_limit:\n  interval: 1h\n  burst: 2\n`);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(`${e.url}healthz`)).status);
    expect(statuses).toEqual([200, 200, 429, 429]);
  });

  it('a slow-loris client trickling headers is cut off by headersTimeout', async () => {
    const e = await start(null, { limits: { headersTimeoutMs: 400, requestTimeoutMs: 1000, timeoutCheckIntervalMs: 50 } });
    const { port } = new URL(e.url);
    const t0 = Date.now();
    const { ms, received } = await new Promise<{ ms: number; received: string }>((resolve, reject) => {
      const sock = netConnect(Number(port), '127.0.0.1');
      let received = '';
      let timer: NodeJS.Timeout | undefined;
      sock.on('connect', () => {
        sock.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
        timer = setInterval(() => sock.write(`X-Slow-${Date.now()}: y\r\n`), 50);
      });
      sock.on('data', (d: Buffer) => void (received += d.toString()));
      sock.on('error', () => undefined);
      sock.on('close', () => {
        clearInterval(timer);
        resolve({ ms: Date.now() - t0, received });
      });
      setTimeout(() => reject(new Error('the slow client was never cut off')), 5000).unref();
    });
    expect(ms).toBeGreaterThanOrEqual(350);
    expect(ms).toBeLessThan(2000);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('a TLS client that never finishes its handshake is cut off by the handshake timeout', async () => {
    const e = await start(TLS, { limits: { handshakeTimeoutMs: 300 } });
    const { port } = new URL(e.url);
    const t0 = Date.now();
    const ms = await new Promise<number>((resolve, reject) => {
      const sock = netConnect(Number(port), '127.0.0.1');
      sock.on('error', () => undefined);
      sock.on('close', () => resolve(Date.now() - t0));
      setTimeout(() => reject(new Error('never cut off')), 5000).unref();
    });
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(2000);
  });

  it('idle keep-alive connections are closed after keepAliveTimeout', async () => {
    const e = await start(null, { limits: { keepAliveTimeoutMs: 200 } });
    const { port } = new URL(e.url);
    const t0 = Date.now();
    const ms = await new Promise<number>((resolve, reject) => {
      const sock = netConnect(Number(port), '127.0.0.1', () => sock.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
      let received = '';
      sock.on('data', (d: Buffer) => void (received += d.toString()));
      sock.on('error', () => undefined);
      sock.on('close', () => resolve(Date.now() - t0));
      setTimeout(() => reject(new Error(`never closed; received ${JSON.stringify(received)}`)), 5000).unref();
    });
    expect(ms).toBeLessThan(1500);
  });
});
