// A certificate's subject alternative names in one canonical form, shared by the web config
// (client_allowed_sans) and the guard (the SANs a client presents). Its own file: the guard is
// on every request's path and must not load the web config's YAML parser.
import { isIP } from 'node:net';

/** IPs compared in one canonical form (Go prints `::1`, Node `0:0:0:0:0:0:0:1`). */
export function normalizeSan(s: string): string {
  if (isIP(s) !== 6) return s;
  const [head = '', tail] = s.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => (g.includes('.') ? g : String(parseInt(g, 16).toString(16)))).join(':');
}
