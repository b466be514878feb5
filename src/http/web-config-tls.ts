// The web config's `tls_server_config`: the toolkit's TLS names (Go's crypto/tls) mapped to
// OpenSSL's, the certificate, key and client CAs read and checked at start, and the client SANs.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext as tlsSecureContext } from 'node:tls';
import { errorMessage } from '../util/errors.js';
import { normalizeSan } from './san.js';
import { FieldError, bool, fields, joinDir, readSmall, str, strList, type Value } from './web-config-yaml.js';

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

function pemCertificates(pem: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b));
}

export async function parseTls(v: Value | undefined, dir: string): Promise<TlsSettings | null> {
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
