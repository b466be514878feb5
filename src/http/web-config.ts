// `--web.config.file`: the Prometheus exporter-toolkit web configuration (TLS, client
// certificates, basic auth, response headers, rate limit), parsed and validated strictly at
// start. Every problem is an E_WEB_CONFIG error (exit 78) naming the file and the field.
// Paths are relative to the config file's directory, as in the toolkit. See docs/security.md
// for where this deliberately differs from the toolkit (all of it stricter, none of it looser).
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { createSecureContext as tlsSecureContext } from 'node:tls';
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { DesyncError, errorMessage } from '../util/errors.js';
import { normalizeSan } from './guard.js';

/** Kept here too: the SAN form is part of what a web config means. */
export { normalizeSan };

export const CLIENT_AUTH_TYPES = ['NoClientCert', 'RequestClientCert', 'RequireAnyClientCert', 'VerifyClientCertIfGiven', 'RequireAndVerifyClientCert'] as const;
export type ClientAuthType = (typeof CLIENT_AUTH_TYPES)[number];
export type TlsVersionName = 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';

/** The toolkit's names (Go's crypto/tls) → OpenSSL's. */
const TLS_VERSIONS: Record<string, TlsVersionName> = { TLS10: 'TLSv1', TLS11: 'TLSv1.1', TLS12: 'TLSv1.2', TLS13: 'TLSv1.3' };
const VERSION_ORDER: TlsVersionName[] = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/**
 * Go's `tls.CipherSuites()` (the suites the toolkit accepts by name) → OpenSSL names. The
 * TLS 1.3 suites are accepted but, as in Go, TLS 1.3 always uses its fixed default set.
 */
const CIPHERS: Record<string, string | null> = {
  TLS_AES_128_GCM_SHA256: null,
  TLS_AES_256_GCM_SHA384: null,
  TLS_CHACHA20_POLY1305_SHA256: null,
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: 'ECDHE-ECDSA-AES128-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: 'ECDHE-ECDSA-AES256-SHA',
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: 'ECDHE-RSA-AES128-SHA',
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: 'ECDHE-RSA-AES256-SHA',
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: 'ECDHE-ECDSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: 'ECDHE-RSA-AES128-GCM-SHA256',
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: 'ECDHE-RSA-AES256-GCM-SHA384',
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-RSA-CHACHA20-POLY1305',
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: 'ECDHE-ECDSA-CHACHA20-POLY1305',
};
/** In Go's list, refused here: RSA key exchange has no forward secrecy. */
const REFUSED_CIPHERS = ['TLS_RSA_WITH_AES_128_CBC_SHA', 'TLS_RSA_WITH_AES_256_CBC_SHA', 'TLS_RSA_WITH_AES_128_GCM_SHA256', 'TLS_RSA_WITH_AES_256_GCM_SHA384'];
const TLS13_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';
const CURVES: Record<string, string> = { CurveP256: 'P-256', CurveP384: 'P-384', CurveP521: 'P-521', X25519: 'X25519' };

/** The toolkit's fixed list of configurable headers; `null` = any value. Names are case-sensitive. */
const HEADERS: Record<string, string[] | null> = {
  'Strict-Transport-Security': null,
  'X-Content-Type-Options': ['nosniff'],
  'X-Frame-Options': ['deny', 'sameorigin'],
  'X-XSS-Protection': null,
  'Content-Security-Policy': null,
};

/** `$2a$`, `$2b$`, `$2y$` with cost 04–31, 22 characters of salt and 31 of hash. */
export const BCRYPT_HASH = /^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$/;
const MAX_FILE_BYTES = 1024 * 1024;

export interface TlsSettings {
  /** PEM text of the certificate chain and key (read at start; restart to rotate). */
  cert: string;
  key: string;
  certSource: string;
  keySource: string;
  clientAuth: ClientAuthType;
  /** PEM of the CAs that client certificates are verified against; null = none configured. */
  clientCa: string | null;
  clientCaSource: string | null;
  minVersion: TlsVersionName;
  maxVersion: TlsVersionName;
  /** OpenSSL cipher string (TLS 1.2 suites as configured + the fixed TLS 1.3 suites), or null = Node's defaults. */
  ciphers: string | null;
  /** OpenSSL curve list, or null = defaults. */
  ecdhCurve: string | null;
  honorCipherOrder: boolean;
  /** SANs (DNS, email, IP, URI) one of which a client certificate must carry; null = not checked. */
  clientAllowedSans: string[] | null;
}

export interface WebConfig {
  file: string;
  tls: TlsSettings | null;
  /** Accepted for compatibility; this exporter serves HTTP/1.1 only (see docs/security.md). */
  http2: boolean;
  headers: Record<string, string>;
  /** user → bcrypt hash; empty = no basic auth. */
  users: Map<string, string>;
  rateLimit: { intervalMs: number; burst: number } | null;
}

class FieldError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
  }
}

type Value =
  | { kind: 'null' }
  | { kind: 'scalar'; value: unknown; text: string }
  | { kind: 'seq'; items: Value[] }
  | { kind: 'map'; entries: Array<[string, Value]> };

interface Walk {
  doc: Document;
  src: string;
  /** Nodes left to visit: aliases can make a small file expand exponentially ("billion laughs"). */
  budget: number;
}

function toValue(node: unknown, w: Walk, field: string, depth = 0): Value {
  if (depth > 16) throw new FieldError(field, 'nested too deeply');
  if (--w.budget < 0) throw new FieldError(field, 'too many YAML nodes (alias expansion?)');
  if (node === null || node === undefined) return { kind: 'null' };
  if (isAlias(node)) return toValue(node.resolve(w.doc), w, field, depth + 1);
  if (isScalar(node)) {
    if (node.value === null) return { kind: 'null' };
    // Go's yaml decodes any scalar into a string field as written (`X-XSS-Protection: 1` → "1").
    const text = typeof node.value === 'string' ? node.value : node.range ? w.src.slice(node.range[0], node.range[1]).trim() : String(node.value);
    return { kind: 'scalar', value: node.value, text };
  }
  if (isSeq(node)) return { kind: 'seq', items: node.items.map((n, i) => toValue(n, w, `${field}[${i}]`, depth + 1)) };
  if (isMap(node)) {
    const entries: Array<[string, Value]> = [];
    for (const pair of node.items) {
      const k = toValue(pair.key as YamlNode, w, field, depth + 1);
      if (k.kind !== 'scalar') throw new FieldError(field, 'map keys must be plain strings');
      entries.push([k.text, toValue(pair.value, w, field ? `${field}.${k.text}` : k.text, depth + 1)]);
    }
    return { kind: 'map', entries };
  }
  throw new FieldError(field, 'unsupported YAML node');
}

function fields(v: Value, field: string, allowed: readonly string[]): Map<string, Value> {
  if (v.kind === 'null') return new Map();
  if (v.kind !== 'map') throw new FieldError(field, `must be a mapping with the keys ${allowed.join(', ')}`);
  const out = new Map<string, Value>();
  for (const [k, val] of v.entries) {
    const name = field ? `${field}.${k}` : k;
    if (!allowed.includes(k)) throw new FieldError(name, `unknown key (allowed here: ${allowed.join(', ')})`);
    out.set(k, val);
  }
  return out;
}

function str(v: Value | undefined, field: string): string {
  if (!v || v.kind === 'null') return '';
  if (v.kind !== 'scalar') throw new FieldError(field, 'must be a string');
  return v.text;
}

function bool(v: Value | undefined, field: string, dflt: boolean): boolean {
  if (!v || v.kind === 'null') return dflt;
  if (v.kind !== 'scalar' || typeof v.value !== 'boolean') throw new FieldError(field, 'must be true or false');
  return v.value;
}

function strList(v: Value | undefined, field: string): string[] | null {
  if (!v || v.kind === 'null') return null;
  if (v.kind !== 'seq') throw new FieldError(field, 'must be a list of strings');
  return v.items.map((item, i) => str(item, `${field}[${i}]`));
}

function strMap(v: Value | undefined, field: string): Array<[string, string]> {
  if (!v || v.kind === 'null') return [];
  if (v.kind !== 'map') throw new FieldError(field, 'must be a mapping of strings');
  return v.entries.map(([k, val]) => [k, str(val, `${field}.${k}`)]);
}

const GO_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration (`1s`, `1m30s`, `250ms`, `0`) or an integer of nanoseconds, in ms. */
function goDuration(v: Value | undefined, field: string): number {
  if (!v || v.kind === 'null') return 0;
  if (v.kind === 'scalar' && typeof v.value === 'number') {
    if (!Number.isInteger(v.value) || v.value < 0) throw new FieldError(field, 'must be a duration like 1s or 500ms');
    return v.value / 1e6;
  }
  const s = str(v, field);
  if (s === '0') return 0;
  const re = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)/gy;
  let ms = 0;
  let pos = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    ms += Number(m[1]) * GO_UNITS[m[2]!]!;
    pos = re.lastIndex;
  }
  if (s === '' || pos !== s.length) throw new FieldError(field, `invalid duration ${JSON.stringify(s)} (use e.g. 1s, 500ms, 1m30s)`);
  return ms;
}

/** config_util.JoinDir: a relative path is relative to the config file's directory. */
function joinDir(dir: string, p: string): string {
  return p === '' || isAbsolute(p) ? p : join(dir, p);
}

async function readSmall(path: string, field: string): Promise<string> {
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new FieldError(field, `${path} is not a regular file`);
    if (st.size > MAX_FILE_BYTES) throw new FieldError(field, `${path} is larger than ${MAX_FILE_BYTES} bytes`);
    return await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof FieldError) throw err;
    throw new FieldError(field, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
  }
}

function pemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

/** Parses and validates the file's text; reads the files it names (`dir` = the config's directory). */
export async function parseWebConfig(text: string, file: string): Promise<WebConfig> {
  const dir = dirname(file);
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) throw new FieldError('', `not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  const root = fields(toValue(doc.contents, { doc, src: text, budget: 10_000 }, ''), '', ['tls_server_config', 'http_server_config', 'basic_auth_users', 'rate_limit']);

  // basic_auth_users: every hash must be a bcrypt hash this exporter can verify.
  const users = new Map<string, string>();
  for (const [user, hash] of strMap(root.get('basic_auth_users'), 'basic_auth_users')) {
    const f = `basic_auth_users.${user}`;
    if (user.includes(':')) throw new FieldError(f, 'a basic-auth user name cannot contain ":" (RFC 7617)');
    if (!BCRYPT_HASH.test(hash)) {
      throw new FieldError(f, 'not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31, 60 characters); create one with `htpasswd -nbBC 10 "" PASSWORD | tr -d \':\\n\'`');
    }
    users.set(user, hash);
  }

  // http_server_config
  const http = fields(root.get('http_server_config') ?? { kind: 'null' }, 'http_server_config', ['http2', 'headers']);
  const http2 = bool(http.get('http2'), 'http_server_config.http2', true);
  const headers: Record<string, string> = {};
  for (const [name, value] of strMap(http.get('headers'), 'http_server_config.headers')) {
    const f = `http_server_config.headers.${name}`;
    if (!(name in HEADERS)) throw new FieldError(f, `this header can not be configured (allowed: ${Object.keys(HEADERS).join(', ')})`);
    const allowed = HEADERS[name];
    if (allowed && !allowed.includes(value)) throw new FieldError(f, `invalid value ${JSON.stringify(value)}: expected one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
    // What Node would refuse to send (CR, LF, other control characters) is refused here, at start.
    if (/[^\t\x20-\x7e\x80-\xff]/.test(value)) throw new FieldError(f, 'the value contains control or non-Latin-1 characters');
    headers[name] = value;
  }

  // rate_limit (newer toolkits): a token bucket; interval 0 disables it.
  const rl = fields(root.get('rate_limit') ?? { kind: 'null' }, 'rate_limit', ['interval', 'burst']);
  const intervalMs = goDuration(rl.get('interval'), 'rate_limit.interval');
  const burstV = rl.get('burst');
  let burst = 0;
  if (burstV && burstV.kind !== 'null') {
    if (burstV.kind !== 'scalar' || typeof burstV.value !== 'number' || !Number.isInteger(burstV.value) || burstV.value < 0) throw new FieldError('rate_limit.burst', 'must be a non-negative integer');
    burst = burstV.value;
  }
  // Go's limiter with burst 0 refuses every request: a config that can never serve is refused now.
  if (intervalMs > 0 && burst < 1) throw new FieldError('rate_limit.burst', 'must be at least 1 when rate_limit.interval is set (0 would refuse every request)');
  const rateLimit = intervalMs > 0 ? { intervalMs, burst } : null;

  const tls = await parseTls(root.get('tls_server_config'), dir);
  return { file, tls, http2, headers, users, rateLimit };
}

async function parseTls(v: Value | undefined, dir: string): Promise<TlsSettings | null> {
  const F = 'tls_server_config';
  const t = fields(v ?? { kind: 'null' }, F, [
    'cert_file', 'key_file', 'cert', 'key', 'client_auth_type', 'client_ca_file', 'client_ca',
    'min_version', 'max_version', 'cipher_suites', 'curve_preferences', 'prefer_server_cipher_suites', 'client_allowed_sans',
  ]);
  const certFile = joinDir(dir, str(t.get('cert_file'), `${F}.cert_file`));
  const keyFile = joinDir(dir, str(t.get('key_file'), `${F}.key_file`));
  const certInline = str(t.get('cert'), `${F}.cert`);
  const keyInline = str(t.get('key'), `${F}.key`);
  const clientCaFile = joinDir(dir, str(t.get('client_ca_file'), `${F}.client_ca_file`));
  const clientCaInline = str(t.get('client_ca'), `${F}.client_ca`);
  const clientAuthRaw = str(t.get('client_auth_type'), `${F}.client_auth_type`);

  const versionOf = (key: string, dflt: TlsVersionName): TlsVersionName => {
    const s = str(t.get(key), `${F}.${key}`);
    if (s === '') return dflt;
    const v = TLS_VERSIONS[s];
    if (!v) throw new FieldError(`${F}.${key}`, `unknown TLS version ${JSON.stringify(s)} (use TLS10, TLS11, TLS12 or TLS13)`);
    return v;
  };
  const minVersion = versionOf('min_version', 'TLSv1.2');
  const maxVersion = versionOf('max_version', 'TLSv1.3');
  const suites = strList(t.get('cipher_suites'), `${F}.cipher_suites`);
  const curves = strList(t.get('curve_preferences'), `${F}.curve_preferences`);
  suites?.forEach((s, i) => {
    if (REFUSED_CIPHERS.includes(s)) throw new FieldError(`${F}.cipher_suites[${i}]`, `${s} is refused: RSA key exchange has no forward secrecy (use a TLS_ECDHE_* suite)`);
    if (!(s in CIPHERS)) throw new FieldError(`${F}.cipher_suites[${i}]`, `unknown cipher suite ${JSON.stringify(s)} (use Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)`);
  });
  curves?.forEach((c, i) => {
    if (!(c in CURVES)) throw new FieldError(`${F}.curve_preferences[${i}]`, `unknown curve ${JSON.stringify(c)} (use ${Object.keys(CURVES).join(', ')})`);
  });
  const honorCipherOrder = bool(t.get('prefer_server_cipher_suites'), `${F}.prefer_server_cipher_suites`, true);
  const sans = strList(t.get('client_allowed_sans'), `${F}.client_allowed_sans`);

  const enabled = certFile !== '' || certInline !== '' || keyFile !== '' || keyInline !== '' || clientCaFile !== '' || clientCaInline !== '' || clientAuthRaw !== '';
  if (!enabled) {
    // The toolkit silently serves plain HTTP here; a TLS setting without a certificate is a mistake.
    if (t.size > 0) throw new FieldError(F, `has ${[...t.keys()].join(', ')} but no certificate: set cert_file and key_file, or remove ${F} to serve plain HTTP`);
    return null;
  }
  if (certFile === '' && certInline === '') throw new FieldError(`${F}.cert_file`, 'missing one of cert or cert_file');
  if (keyFile === '' && keyInline === '') throw new FieldError(`${F}.key_file`, 'missing one of key or key_file');
  if (certFile !== '' && certInline !== '') throw new FieldError(`${F}.cert`, 'set cert or cert_file, not both');
  if (keyFile !== '' && keyInline !== '') throw new FieldError(`${F}.key`, 'set key or key_file, not both');
  if (clientCaFile !== '' && clientCaInline !== '') throw new FieldError(`${F}.client_ca`, 'set client_ca or client_ca_file, not both');
  if (VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion)) throw new FieldError(`${F}.min_version`, 'is above max_version');

  const clientAuth: ClientAuthType = clientAuthRaw === '' ? 'NoClientCert' : clientAuthRaw === 'RequireClientCert' ? 'RequireAnyClientCert' : (clientAuthRaw as ClientAuthType);
  if (!CLIENT_AUTH_TYPES.includes(clientAuth)) throw new FieldError(`${F}.client_auth_type`, `invalid value ${JSON.stringify(clientAuthRaw)} (use ${CLIENT_AUTH_TYPES.join(', ')})`);

  const cert = certFile !== '' ? await readSmall(certFile, `${F}.cert_file`) : certInline;
  const key = keyFile !== '' ? await readSmall(keyFile, `${F}.key_file`) : keyInline;
  const certField = certFile !== '' ? `${F}.cert_file` : `${F}.cert`;
  let certs: X509Certificate[];
  try {
    certs = pemCertificates(cert);
  } catch (err) {
    throw new FieldError(certField, `not a valid PEM certificate: ${errorMessage(err)}`);
  }
  if (certs.length === 0) throw new FieldError(certField, 'contains no PEM certificate');
  const keyField = keyFile !== '' ? `${F}.key_file` : `${F}.key`;
  let pairOk: boolean;
  try {
    pairOk = certs[0]!.checkPrivateKey(createPrivateKey(key));
    tlsSecureContext({ cert, key });
  } catch (err) {
    throw new FieldError(keyField, `certificate and key do not form a usable pair: ${errorMessage(err)}`);
  }
  if (!pairOk) throw new FieldError(keyField, 'certificate and key do not form a usable pair: the key is not the certificate\'s (the first certificate must be the server\'s own)');

  let clientCa: string | null = null;
  let clientCaSource: string | null = null;
  if (clientCaFile !== '' || clientCaInline !== '') {
    const caField = clientCaFile !== '' ? `${F}.client_ca_file` : `${F}.client_ca`;
    if (clientAuth === 'NoClientCert') throw new FieldError(`${F}.client_auth_type`, 'client CAs are configured without a client auth policy: set client_auth_type (e.g. RequireAndVerifyClientCert)');
    clientCa = clientCaFile !== '' ? await readSmall(clientCaFile, caField) : clientCaInline;
    clientCaSource = clientCaFile !== '' ? clientCaFile : 'inline';
    let cas: X509Certificate[];
    try {
      cas = pemCertificates(clientCa);
    } catch (err) {
      throw new FieldError(caField, `not a valid PEM certificate: ${errorMessage(err)}`);
    }
    if (cas.length === 0) throw new FieldError(caField, 'contains no PEM certificate');
  } else if (clientAuth === 'RequireAndVerifyClientCert') {
    // Go would verify against the system's CAs; this exporter never trusts them for clients.
    throw new FieldError(`${F}.client_ca_file`, 'RequireAndVerifyClientCert needs client_ca_file: client certificates are only ever verified against the CAs you name');
  }
  if (sans !== null) {
    // A SAN is only worth checking on a certificate a trusted CA issued: with
    // RequireAnyClientCert anyone can mint a self-signed certificate carrying an allowed SAN.
    if (clientAuth !== 'RequireAndVerifyClientCert') {
      throw new FieldError(`${F}.client_allowed_sans`, `requires client_auth_type RequireAndVerifyClientCert (and client_ca_file), not ${clientAuth}: without verification anyone can present a self-signed certificate carrying an allowed SAN`);
    }
    if (sans.length === 0) throw new FieldError(`${F}.client_allowed_sans`, 'is empty: no client could connect');
  }

  let ciphers: string | null = null;
  if (suites && suites.length > 0) {
    const tls12 = suites.map((s) => CIPHERS[s]).filter((c): c is string => c !== null);
    // Only TLS 1.3 suites listed: like Go, both TLS 1.2 and TLS 1.3 keep their defaults.
    ciphers = tls12.length > 0 ? [...tls12, TLS13_SUITES].join(':') : null;
  }
  const ecdhCurve = curves && curves.length > 0 ? curves.map((c) => CURVES[c]!).join(':') : null;
  try {
    // Everything Node/OpenSSL would refuse at listen time is refused now.
    tlsSecureContext({ cert, key, minVersion, maxVersion, ...(ciphers ? { ciphers } : {}), ...(ecdhCurve ? { ecdhCurve } : {}) });
  } catch (err) {
    throw new FieldError(F, `OpenSSL refuses these settings: ${errorMessage(err)}`);
  }
  return {
    cert, key,
    certSource: certFile || 'inline', keySource: keyFile || 'inline',
    clientAuth, clientCa, clientCaSource, minVersion, maxVersion, ciphers, ecdhCurve, honorCipherOrder,
    clientAllowedSans: sans === null ? null : sans.map(normalizeSan),
  };
}

/** Reads and validates `--web.config.file`. */
export async function loadWebConfig(file: string): Promise<WebConfig> {
  try {
    const text = await readSmall(file, '');
    return await parseWebConfig(text, file);
  } catch (err) {
    if (err instanceof FieldError) {
      throw new DesyncError('E_WEB_CONFIG', `--web.config.file ${file}: ${err.field ? `${err.field}: ` : ''}${err.message}`, { details: { field: err.field } });
    }
    throw new DesyncError('E_WEB_CONFIG', `--web.config.file ${file}: ${errorMessage(err)}`, { cause: err });
  }
}
