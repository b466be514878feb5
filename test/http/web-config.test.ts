// `--web.config.file` validation: the exporter-toolkit's own corpus against Debian's
// `promtool check web-config` verdicts (recorded, and live when promtool is installed), with
// every deliberate difference listed (and explained in docs/security.md), plus the edge cases
// the corpus does not cover.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadWebConfig, normalizeSan, type WebConfig } from '../../src/http/web-config.js';
import { isDesyncError } from '../../src/util/errors.js';
import { requireTools } from '../helpers/tools.js';
import { CORPUS } from './client.js';


/**
 * Files where this exporter's verdict differs from promtool 0.8 (toolkit 0.8.2), and why.
 * docs/security.md ("Web config compatibility") has the same list: keep them in step.
 */
const DIFFERENCES: Record<string, { ours: 0 | 1; why: string }> = {
  'tls_config_noAuth.requireanyclientcertkeyinline.good.yml': { ours: 0, why: 'inline `key` (newer toolkit field) is supported' },
  'web_config_noAuth_tlsInline.good.yml': { ours: 0, why: 'inline `cert`/`key` (newer toolkit fields) are supported' },
  'web_config_auth_client_san.good.yaml': { ours: 0, why: '`client_allowed_sans` (newer toolkit field) is supported' },
  'web_config_auth_client_san.bad.yaml': { ours: 0, why: 'valid config; the wrong SAN only fails when a client connects (as in the toolkit)' },
  'web_config_rate_limiter_nonblocking.yaml': { ours: 0, why: '`rate_limit` (newer toolkit field) is supported; interval 0 = off' },
  'web_config_auth_clientCAs_missing.bad.yml': { ours: 1, why: 'RequireAndVerifyClientCert without client_ca_file: Go would trust the system CAs for clients; refused at start' },
  'web_config_noAuth.good.blocking.yml': { ours: 1, why: 'same content as clientCAs_missing.bad.yml: refused at start for the same reason' },
};

async function verdict(file: string): Promise<{ code: 0 | 1; message: string; config?: WebConfig }> {
  try {
    return { code: 0, message: '', config: await loadWebConfig(file) };
  } catch (err) {
    expect(isDesyncError(err, 'E_WEB_CONFIG')).toBe(true);
    return { code: 1, message: (err as Error).message };
  }
}

describe('the exporter-toolkit corpus', async () => {
  const recorded = new Map(
    (await readFile(join(CORPUS, 'promtool-0.8-verdicts.txt'), 'utf8')).trim().split('\n').map((l) => {
      const [code, name] = l.trim().split(/\s+/);
      return [name!, Number(code)] as const;
    }),
  );
  const files = (await readdir(CORPUS)).filter((f) => /\.ya?ml$/.test(f)).sort();

  it('has a recorded promtool verdict for every file', () => {
    expect(files.length).toBeGreaterThanOrEqual(40);
    expect([...recorded.keys()].sort()).toEqual(files);
  });

  it.each(files)('%s: same verdict as promtool 0.8, or a listed difference', async (f) => {
    const ours = await verdict(join(CORPUS, f));
    const expected = DIFFERENCES[f]?.ours ?? recorded.get(f);
    expect({ file: f, code: ours.code, message: ours.message }).toMatchObject({ file: f, code: expected });
    if (DIFFERENCES[f]) expect(recorded.get(f)).not.toBe(DIFFERENCES[f]!.ours); // a stale entry would hide a change
    // Every rejection names the file and the field.
    if (ours.code === 1) expect(ours.message).toMatch(new RegExp(`^--web\\.config\\.file ${CORPUS.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/${f.replace(/\./g, '\\.')}: `));
  });

  it.skipIf(!requireTools('promtool'))('the recorded verdicts are what the installed promtool says', () => {
    const differ: string[] = [];
    for (const f of files) {
      const r = spawnSync('promtool', ['check', 'web-config', f], { cwd: CORPUS, encoding: 'utf8', timeout: 20_000 });
      if ((r.status === 0 ? 0 : 1) !== recorded.get(f)) differ.push(`${f}: promtool exit ${r.status}: ${r.stdout}${r.stderr}`);
    }
    expect(differ).toEqual([]);
  });

  it('resolves paths relative to the config file and reads what they name', async () => {
    const c = (await verdict(join(CORPUS, 'tls_config_noAuth.requireandverifyclientcert.good.yml'))).config!;
    expect(c.tls!.certSource).toBe(join(CORPUS, 'server.crt'));
    expect(c.tls!.clientCaSource).toBe(join(CORPUS, 'client_selfsigned.pem'));
    expect(c.tls!.cert).toContain('BEGIN CERTIFICATE');
    expect(c.tls!.clientAuth).toBe('RequireAndVerifyClientCert');
    expect(c.tls!.minVersion).toBe('TLSv1.2');
    expect(c.tls!.maxVersion).toBe('TLSv1.3');
  });

  it('maps ciphers, curves, versions and headers to what Node is given', async () => {
    const ciphers = (await verdict(join(CORPUS, 'web_config_noAuth_someCiphers_noOrder.good.yml'))).config!.tls!;
    expect(ciphers.ciphers).toBe('ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256');
    expect(ciphers.honorCipherOrder).toBe(false);
    expect([ciphers.minVersion, ciphers.maxVersion]).toEqual(['TLSv1.2', 'TLSv1.2']);
    const curves = (await verdict(join(CORPUS, 'web_config_noAuth_allCurves.good.yml'))).config!.tls!;
    expect(curves.ecdhCurve).toBe('P-256:P-384:P-521:X25519');
    const headers = (await verdict(join(CORPUS, 'web_config_headers.good.yml'))).config!;
    expect(headers.tls).toBeNull();
    expect(headers.headers).toEqual({
      'X-Frame-Options': 'deny',
      'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
      'X-Content-Type-Options': 'nosniff',
      'X-XSS-Protection': '1',
      'Content-Security-Policy': "default-src 'self' *.test.example.net",
    });
    const users = (await verdict(join(CORPUS, 'web_config_users_noTLS.good.yml'))).config!;
    expect([...users.users.keys()]).toEqual(['alice', 'bob', 'carol', 'dave']);
    expect(users.tls).toBeNull();
  });
});

describe('cases the corpus does not cover', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
  const check = async (yaml: string): Promise<{ code: 0 | 1; message: string; config?: WebConfig }> => {
    dir ??= await mkdtemp(join(tmpdir(), 'nixos-desync-webcfg-'));
    const f = join(dir, 'web.yml');
    await writeFile(f, yaml.replaceAll('CORPUS', CORPUS));
    return verdict(f);
  };
  const HASH = '$2y$10$qRTBuFoULoYNA7AQ/F3ck.trZBPyjV64.oA4ZsSBCIWvXuvQlQTuu';
  const TLS = 'tls_server_config:\n  cert_file: CORPUS/server.crt\n  key_file: CORPUS/server.key\n';

  it.each([
    ['duplicate keys', `basic_auth_users:\n  a: ${HASH}\n  a: ${HASH}\n`, /not valid YAML: Map keys must be unique/],
    ['an unknown top-level key', 'tls_config: {}\n', /: tls_config: unknown key/],
    ['a list at the top', '- a\n', /must be a mapping/],
    ['a bcrypt hash with an unsupported variant', `basic_auth_users:\n  a: ${HASH.replace('$2y$', '$2x$')}\n`, /basic_auth_users\.a: not a bcrypt hash/],
    ['a truncated bcrypt hash', `basic_auth_users:\n  a: ${HASH.slice(0, 59)}\n`, /basic_auth_users\.a: not a bcrypt hash/],
    ['a bcrypt cost out of range', `basic_auth_users:\n  a: ${HASH.replace('$10$', '$03$')}\n`, /basic_auth_users\.a: not a bcrypt hash/],
    ['a user name with a colon', `basic_auth_users:\n  "a:b": ${HASH}\n`, /basic_auth_users\.a:b: .*cannot contain ":"/],
    ['a header name in the wrong case', 'http_server_config:\n  headers:\n    x-frame-options: deny\n', /headers\.x-frame-options: this header can not be configured/],
    ['a header value with a line break', 'http_server_config:\n  headers:\n    Content-Security-Policy: "a\\r\\nSet-Cookie: x=1"\n', /Content-Security-Policy: the value contains control/],
    ['http2 that is not a boolean', 'http_server_config:\n  http2: maybe\n', /http_server_config\.http2: must be true or false/],
    ['TLS settings without a certificate', 'tls_server_config:\n  min_version: TLS13\n', /tls_server_config: has min_version but no certificate/],
    ['min_version above max_version', `${TLS}  min_version: TLS13\n  max_version: TLS12\n`, /tls_server_config\.min_version: is above max_version/],
    ['an RSA key-exchange cipher', `${TLS}  cipher_suites: [TLS_RSA_WITH_AES_128_GCM_SHA256]\n`, /cipher_suites\[0\]: .*no forward secrecy/],
    ['a key that does not match the certificate', 'tls_server_config:\n  cert_file: CORPUS/server.crt\n  key_file: CORPUS/client_selfsigned.key\n', /tls_server_config\.key_file: certificate and key do not form a usable pair/],
    ['a certificate file as the key', 'tls_server_config:\n  cert_file: CORPUS/server.crt\n  key_file: CORPUS/server.crt\n', /tls_server_config\.key_file: /],
    ['a client CA file without certificates', `${TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: CORPUS/server.key\n`, /client_ca_file: contains no PEM certificate/],
    ['an unknown client_auth_type', `${TLS}  client_auth_type: Sometimes\n`, /client_auth_type: invalid value "Sometimes"/],
    ['client_allowed_sans with RequireAnyClientCert (a self-signed certificate could carry the SAN)', `${TLS}  client_auth_type: RequireAnyClientCert\n  client_allowed_sans: [test3]\n`, /client_allowed_sans: requires client_auth_type RequireAndVerifyClientCert .*not RequireAnyClientCert: without verification anyone can present a self-signed certificate/],
    ['client_allowed_sans with RequireClientCert (the alias of RequireAnyClientCert)', `${TLS}  client_auth_type: RequireClientCert\n  client_allowed_sans: [test3]\n`, /client_allowed_sans: requires client_auth_type RequireAndVerifyClientCert/],
    ['client_allowed_sans without a required certificate', `${TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: CORPUS/client2_selfsigned.pem\n  client_allowed_sans: [test3]\n`, /client_allowed_sans: requires client_auth_type/],
    ['cert and cert_file both set', `${TLS}  cert: "x"\n`, /tls_server_config\.cert: set cert or cert_file, not both/],
    ['a rate limit with burst 0', 'rate_limit:\n  interval: 1s\n  burst: 0\n', /rate_limit\.burst: must be at least 1/],
    ['a bad rate-limit interval', 'rate_limit:\n  interval: soon\n  burst: 1\n', /rate_limit\.interval: invalid duration/],
    ['an alias bomb', `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n`, /too many YAML nodes/],
  ])('rejects %s', async (_name, yaml, message) => {
    const r = await check(yaml);
    expect(r.code).toBe(1);
    expect(r.message).toMatch(message);
  });

  it('accepts YAML 1.1 booleans, scalars as header values, Go durations and the legacy RequireClientCert', async () => {
    const r = await check(`${TLS}  client_auth_type: RequireClientCert\n  prefer_server_cipher_suites: no\nhttp_server_config:\n  http2: off\n  headers:\n    X-XSS-Protection: 1\nrate_limit:\n  interval: 1m30s\n  burst: 5\n`);
    expect(r.message).toBe('');
    expect(r.config!.tls!.clientAuth).toBe('RequireAnyClientCert');
    expect(r.config!.tls!.honorCipherOrder).toBe(false);
    expect(r.config!.http2).toBe(false);
    expect(r.config!.headers['X-XSS-Protection']).toBe('1');
    expect(r.config!.rateLimit).toEqual({ intervalMs: 90_000, burst: 5 });
  });

  it('a missing or unreadable file is E_WEB_CONFIG naming it', async () => {
    const r = await verdict('/nonexistent/web.yml');
    expect(r.message).toMatch(/^--web\.config\.file \/nonexistent\/web\.yml: cannot read .*ENOENT/);
  });

  it('compares IPv6 SANs in one canonical form', () => {
    expect(normalizeSan('::1')).toBe(normalizeSan('0:0:0:0:0:0:0:1'));
    expect(normalizeSan('2001:DB8::0001')).toBe('2001:db8:0:0:0:0:0:1');
    expect(normalizeSan('test3')).toBe('test3');
  });
});
