// A small, strict reader for the YAML subset our own rule file uses (block mappings and
// sequences, plain and quoted scalars, `|`/`>` block scalars, comments). There is no YAML
// library among the dependencies; anything outside the subset (flow collections, anchors,
// tags, multi-line plain or quoted scalars) throws instead of being misread. promtool
// parses the same file for real; the tests cross-check the rule count with it.

export type YamlValue = string | null | YamlValue[] | { [key: string]: YamlValue };

export function parseYamlSubset(text: string): YamlValue {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  let i = 0;
  const skippable = (l: string): boolean => /^\s*(#.*)?$/.test(l);
  const indentOf = (l: string): number => /^ */.exec(l)![0].length;
  const fail = (msg: string): never => {
    throw new Error(`yaml-subset: line ${i + 1}: ${msg}: ${JSON.stringify(lines[i] ?? '')}`);
  };
  const skip = (): void => {
    while (i < lines.length && skippable(lines[i]!)) i++;
  };
  const isSeqItem = (t: string): boolean => t === '-' || t.startsWith('- ');

  function stripComment(s: string): string {
    // In a plain scalar, " #" starts a comment; quoted scalars are handled by scalar().
    const m = / +#/.exec(s);
    return (m ? s.slice(0, m.index) : s).trim();
  }

  function scalar(raw: string): YamlValue {
    const s = raw.trim();
    if (s.startsWith('"')) {
      const m = /^"((?:[^"\\]|\\.)*)"\s*(#.*)?$/.exec(s);
      if (!m) fail('unterminated or multi-line double-quoted scalar');
      return JSON.parse(`"${m![1]}"`) as string;
    }
    if (s.startsWith("'")) {
      const m = /^'((?:[^']|'')*)'\s*(#.*)?$/.exec(s);
      if (!m) fail('unterminated or multi-line single-quoted scalar');
      return m![1]!.replace(/''/g, "'");
    }
    if (/^[[{&*!%@`]/.test(s)) fail('flow collections, anchors, aliases and tags are not supported');
    const v = stripComment(s);
    return v === '' || v === '~' || v === 'null' ? null : v;
  }

  function blockScalar(header: string, parentIndent: number): string {
    const folded = header.startsWith('>');
    const chomp = header.length > 1 ? header[1] : '';
    const body: string[] = [];
    let contentIndent = -1;
    while (i < lines.length) {
      const l = lines[i]!;
      if (l.trim() === '') { body.push(''); i++; continue; }
      const ind = indentOf(l);
      if (ind <= parentIndent) break;
      if (contentIndent < 0) contentIndent = ind;
      if (ind < contentIndent) fail('block scalar line less indented than its first line');
      body.push(l.slice(contentIndent));
      i++;
    }
    while (body.length && body[body.length - 1] === '') body.pop();
    let text: string;
    if (!folded) {
      text = body.join('\n');
    } else {
      text = '';
      body.forEach((l, k) => {
        if (k === 0) { text = l; return; }
        const prev = body[k - 1]!;
        const moreIndented = l.startsWith(' ') || prev.startsWith(' ');
        text += l === '' || prev === '' || moreIndented ? '\n' + l : ' ' + l;
      });
    }
    return chomp === '-' ? text : text + '\n';
  }

  function parseSeq(ind: number): YamlValue[] {
    const out: YamlValue[] = [];
    for (;;) {
      skip();
      if (i >= lines.length) break;
      const l = lines[i]!;
      const li = indentOf(l);
      const t = l.slice(li);
      if (li < ind || (li === ind && !isSeqItem(t))) break;
      if (li > ind) fail('unexpected indentation in a sequence');
      const rest = t === '-' ? '' : t.slice(2);
      if (rest.trim() === '') {
        i++;
        out.push(parseBlock(ind + 1));
      } else if (/^[A-Za-z0-9_.-]+:( |$)/.test(rest)) {
        lines[i] = ' '.repeat(li + 2) + rest; // "- key: v" is a mapping indented past the dash
        out.push(parseMap(li + 2));
      } else {
        i++;
        out.push(scalar(rest));
      }
    }
    return out;
  }

  function parseMap(ind: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    for (;;) {
      skip();
      if (i >= lines.length) break;
      const l = lines[i]!;
      const li = indentOf(l);
      if (li < ind) break;
      if (li > ind) fail('unexpected indentation in a mapping');
      const t = l.slice(li);
      if (isSeqItem(t)) break;
      const m = /^([A-Za-z0-9_.-]+):(?: +(.*))?$/.exec(t);
      if (!m) fail('expected "key: value"');
      const key = m![1]!;
      if (key in out) fail(`duplicate key ${key}`);
      const rest = m![2] ?? '';
      i++;
      const header = stripComment(rest);
      if (header === '') {
        skip();
        if (i >= lines.length) { out[key] = null; continue; }
        const nl = lines[i]!;
        const ni = indentOf(nl);
        if (ni > li || (ni === li && isSeqItem(nl.slice(ni)))) out[key] = parseBlock(li + 1 - (ni === li ? 1 : 0));
        else out[key] = null;
      } else if (/^[|>][+-]?$/.test(header)) {
        out[key] = blockScalar(header, li);
      } else {
        out[key] = scalar(rest);
      }
    }
    return out;
  }

  function parseBlock(minIndent: number): YamlValue {
    skip();
    if (i >= lines.length) return null;
    const ind = indentOf(lines[i]!);
    if (ind < minIndent) return null;
    return isSeqItem(lines[i]!.slice(ind)) ? parseSeq(ind) : parseMap(ind);
  }

  const doc = parseBlock(0);
  skip();
  if (i < lines.length) fail('unparsed trailing content');
  return doc;
}
