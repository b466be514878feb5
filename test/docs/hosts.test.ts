// No made-up host in what the project ships (rules, dashboards, docs, the module, the code,
// nix/npm-lock.nix): every URL's host is loopback, a name reserved for examples (RFC 2606/6761:
// example.com/net/org, .example, .invalid, .test, .localhost), or a real host named below on
// purpose. A runbook link to a host nobody controls sends an on-call engineer to a stranger.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/**
 * What is shipped or read by users: everything but the tests and what npm writes
 * (package-lock.json holds the dependencies' own funding and repository links).
 */
const SHIPPED = ['.ci', 'README.md', 'alerts', 'bench', 'dashboards', 'default.nix', 'docs', 'flake.lock', 'flake.nix', 'nix',
  'package.json', 'scripts', 'src'];
/** Real hosts the project names on purpose, and why. */
const REAL: Record<string, string> = {
  'registry.npmjs.org': 'where package-lock.json and nix/npm-lock.nix fetch the npm dependencies',
};
const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1', '0.0.0.0', '[::1]', '[::]']);
const RESERVED = /(^|\.)(example|invalid|test|localhost)$|(^|\.)example\.(com|net|org)$/;
const URL_RE = /\b[a-z][a-z0-9+.-]*:\/\/([^/\s"'`<>(){}|\\,;]*)/gi;

function files(p: string): string[] {
  const abs = path.join(ROOT, p);
  let st;
  try {
    st = statSync(abs);
  } catch {
    return [];
  }
  if (!st.isDirectory()) return [p];
  return readdirSync(abs).flatMap((e) => files(path.join(p, e)));
}

/** The host of each URL in a text (userinfo and port dropped); placeholders (`<host>`, `${h}`, `…`) skipped. */
export function urlHosts(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(URL_RE)) {
    const hostPort = m[1]!.replace(/^.*@/, '').toLowerCase();
    const host = hostPort.startsWith('[') ? hostPort.replace(/\].*$/, ']') : hostPort.replace(/:.*$/, '');
    if (host === '' || /[$<{%*…]/.test(host)) continue;
    out.push(host);
  }
  return out;
}

const known = (host: string): boolean => LOOPBACK.has(host) || RESERVED.test(host) || host in REAL;

describe('hosts in shipped files', () => {
  it('finds the hosts of URLs (the check itself)', () => {
    expect(urlHosts('see https://user@wiki.corp.example:8443/x and http://<host>:9793/ or git+file:///tmp/x or https://…/runbooks.md')).toEqual(['wiki.corp.example']);
    expect(urlHosts('`Prometheus http://prom:9090: query failed` http://[::1]:9793/')).toEqual(['prom', '[::1]']);
    expect(known('nixos-desync.invalid')).toBe(true);
    expect(known('prometheus.example')).toBe(true);
    expect(known('github.bileizhen.workers.dev')).toBe(false);
    expect(known('prometheus')).toBe(false);
  });

  it('every URL names a loopback, reserved or deliberately real host', () => {
    const shipped = SHIPPED.flatMap(files);
    expect(shipped.length).toBeGreaterThan(100);
    const unknown: string[] = [];
    for (const f of shipped) {
      const text = readFileSync(path.join(ROOT, f), 'utf8');
      for (const h of new Set(urlHosts(text))) if (!known(h)) unknown.push(`${f}: ${h}`);
    }
    expect(unknown, 'use a reserved example name (prometheus.example, .invalid) or add the real host to REAL with a reason').toEqual([]);
  });
});
