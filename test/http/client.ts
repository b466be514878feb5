// A small HTTP(S) client for the exporter's security tests: one connection per request (no
// pooling, so every request does its own TLS handshake), client certificates from the
// exporter-toolkit corpus, and the raw outcome (status, headers, body, or the error).
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join, resolve } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';

/** The exporter-toolkit's web-config corpus (configs, certificates, keys), in the shared folder. */
// A vendored copy (with its LICENSE) of the exporter-toolkit's web-config test corpus, so a
// clean clone tests against it without anything outside the repository.
export const CORPUS = resolve(fileURLToPath(new URL('../fixtures/exporter-toolkit-web', import.meta.url)));

export const pem = (name: string): string => readFileSync(join(CORPUS, name), 'utf8');

export interface Outcome {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  protocol: string | null;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** `client_selfsigned` → client_selfsigned.pem + .key; `server` → server.crt + server.key. */
  clientCert?: 'client_selfsigned' | 'client2_selfsigned' | 'server';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  body?: string;
}

const SERVER_FP = new X509Certificate(pem('server.crt')).fingerprint256;

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

export function get(url: string, opts: RequestOptions = {}): Promise<Outcome> {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
  const cert = opts.clientCert === 'server' ? { cert: pem('server.crt'), key: pem('server.key') }
    : opts.clientCert ? { cert: pem(`${opts.clientCert}.pem`), key: pem(`${opts.clientCert}.key`) } : {};
  return new Promise((resolve, reject) => {
    const req = (tls ? httpsRequest : httpRequest)(u, {
      method: opts.method ?? 'GET',
      headers: opts.headers,
      agent: false,
      // OpenSSL 3 refuses the corpus CA chain for server auth ("unsuitable certificate
      // purpose": its intermediate's EKU), so the server certificate is pinned instead.
      ...(tls ? { rejectUnauthorized: false, checkServerIdentity: () => undefined, servername: 'localhost', ...cert, ...(opts.maxVersion ? { maxVersion: opts.maxVersion } : {}), ...(opts.minVersion ? { minVersion: opts.minVersion } : {}) } : {}),
      timeout: 10_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      const protocol = tls ? (res.socket as TLSSocket).getProtocol() : null;
      if (tls && (res.socket as TLSSocket).getPeerX509Certificate()?.fingerprint256 !== SERVER_FP) {
        req.destroy(new Error('not the corpus server certificate'));
        return;
      }
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), protocol }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The request's error (a refused handshake, a reset), or a failure if it got an answer. */
export async function refused(url: string, opts: RequestOptions = {}): Promise<Error> {
  try {
    const r = await get(url, opts);
    throw new Error(`expected the connection to be refused, got HTTP ${r.status}`);
  } catch (err) {
    if ((err as Error).message.startsWith('expected the connection')) throw err;
    return err as Error;
  }
}
