// The desync proposal's state files (`<prDesyncDir>/<name>.nix`, content
// `{ desyncAge = N; path = /nix/store/…; }`) read by a tiny strict parser, never evaluated:
// they are Nix code, and only an attribute set of plain literals is accepted.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { DESYNC_NAME_RE } from '../config/schema.js';
import { readRevision } from '../nix/cli-adapter.js';
import { DesyncError, errorMessage } from '../util/errors.js';

export const PR_FILE_MAX_BYTES = 64 * 1024;

export interface PrDesync {
  name: string;
  desyncAge: number;
  path: string;
  revision: string;
}

type Token =
  | { t: 'punct'; v: '{' | '}' | '=' | ';' }
  | { t: 'ident'; v: string }
  | { t: 'int'; v: string }
  | { t: 'path'; v: string }
  | { t: 'string'; v: string }
  | { t: 'bool'; v: string };

const bad = (why: string): DesyncError => new DesyncError('E_STATE_CORRUPT', `not a desync state file: ${why}`);

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '#') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      if (end < 0) throw bad('unterminated comment');
      i = end + 2;
    } else if ('{}=;'.includes(c)) {
      out.push({ t: 'punct', v: c as '{' | '}' | '=' | ';' });
      i++;
    } else if (c === '"') {
      let v = '';
      i++;
      for (;;) {
        if (i >= text.length) throw bad('unterminated string');
        const d = text[i]!;
        if (d === '"') break;
        if (d === '$' && text[i + 1] === '{') throw bad('string interpolation is not allowed');
        if (d === '\\') {
          const e = text[i + 1];
          if (e === undefined) throw bad('unterminated string');
          v += e === 'n' ? '\n' : e === 't' ? '\t' : e === 'r' ? '\r' : e;
          i += 2;
          continue;
        }
        v += d;
        i++;
      }
      i++;
      out.push({ t: 'string', v });
    } else {
      const m = /^(?:(\/[A-Za-z0-9._+\-/]+)|([0-9]+)|([A-Za-z_][A-Za-z0-9_'-]*))/.exec(text.slice(i, i + 4096));
      if (!m) throw bad(`unexpected ${JSON.stringify(c)} at offset ${i}`);
      if (m[1] !== undefined) out.push({ t: 'path', v: m[1] });
      else if (m[2] !== undefined) out.push({ t: 'int', v: m[2] });
      else out.push(m[3] === 'true' || m[3] === 'false' ? { t: 'bool', v: m[3] } : { t: 'ident', v: m[3]! });
      i += m[0].length;
    }
  }
  return out;
}

/** `{ desyncAge = 3; path = /nix/store/…; }` → its two fields; anything that is not a flat set of literals throws. */
export function parsePrDesyncText(text: string): { desyncAge: number; path: string } {
  const toks = tokenize(text);
  let k = 0;
  const next = (): Token | undefined => toks[k++];
  const expect = (v: string): void => {
    const t = next();
    if (!t || t.t !== 'punct' || t.v !== v) throw bad(`expected "${v}"`);
  };
  expect('{');
  const attrs = new Map<string, Token>();
  for (;;) {
    const t = next();
    if (!t) throw bad('expected "}"');
    if (t.t === 'punct' && t.v === '}') break;
    if (t.t !== 'ident') throw bad('expected an attribute name');
    expect('=');
    const value = next();
    if (!value || value.t === 'punct' || value.t === 'ident') throw bad(`attribute ${t.v} must be a literal`);
    expect(';');
    if (attrs.has(t.v)) throw bad(`attribute ${t.v} defined twice`);
    attrs.set(t.v, value);
  }
  if (k !== toks.length) throw bad('trailing content after the attribute set');
  const age = attrs.get('desyncAge');
  const path = attrs.get('path');
  if (!age || age.t !== 'int' || age.v.length > 9) throw bad('desyncAge must be a non-negative integer');
  if (!path || (path.t !== 'path' && path.t !== 'string')) throw bad('path must be a path or a string');
  if (!path.v.startsWith('/') || path.v.includes('\0') || path.v.split('/').includes('..')) throw bad('path must be an absolute path');
  return { desyncAge: Number(age.v), path: path.v };
}

/** Reads one file (following its symlink into the store), bounded in size, never blocking on a FIFO. */
export async function readPrDesyncFile(file: string, name: string, storeDir = '/nix/store'): Promise<PrDesync> {
  if (!DESYNC_NAME_RE.test(name)) throw new DesyncError('E_STATE_CORRUPT', `${file}: file name is not a valid desync name`);
  let text: string;
  try {
    const fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw bad('not a regular file');
      if (st.size > PR_FILE_MAX_BYTES) throw bad(`larger than ${PR_FILE_MAX_BYTES} bytes`);
      const buf = Buffer.alloc(Math.min(st.size + 1, PR_FILE_MAX_BYTES + 1));
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      if (bytesRead > PR_FILE_MAX_BYTES) throw bad(`larger than ${PR_FILE_MAX_BYTES} bytes`);
      text = buf.subarray(0, bytesRead).toString('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw new DesyncError('E_STATE_CORRUPT', `${file}: ${errorMessage(err)}`, { cause: err });
  }
  let parsed;
  try {
    parsed = parsePrDesyncText(text);
  } catch (err) {
    throw new DesyncError('E_STATE_CORRUPT', `${file}: ${errorMessage(err)}`, { cause: err });
  }
  return { name, ...parsed, revision: await readRevision(parsed.path, storeDir) };
}
