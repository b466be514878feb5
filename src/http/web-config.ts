// `--web.config.file`: the Prometheus exporter-toolkit web configuration (TLS, client
// certificates, basic auth, response headers, rate limit), parsed and validated strictly at
// start. Every problem is an E_WEB_CONFIG error (exit 78) naming the file and the field.
// Paths are relative to the config file's directory, as in the toolkit. See docs/security.md
// for where this deliberately differs from the toolkit (all of it stricter, none of it looser).
import { dirname } from 'node:path';
import { parseDocument } from 'yaml';
import { DesyncError, errorMessage } from '../util/errors.js';
import { parseTls, type TlsSettings } from './web-config-tls.js';
import { FieldError, bool, fields, goDuration, readSmall, strMap, toValue } from './web-config-yaml.js';

/** Kept here too: the TLS part and the SAN form are part of what a web config means. */
export { CLIENT_AUTH_TYPES, type ClientAuthType, type TlsSettings, type TlsVersionName } from './web-config-tls.js';
export { normalizeSan } from './san.js';

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
