// Unit files as systemd reads them, for the module tests (test/nix/): sections, repeated keys,
// and ExecStart= as the argv the module wrote.

/** A unit file as systemd reads it: section → key → values (a key may repeat). */
export function parseUnit(text: string): Record<string, Record<string, string[]>> {
  const out: Record<string, Record<string, string[]>> = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const m = /^\[(.+)\]$/.exec(line);
    if (m) {
      section = m[1]!;
      out[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    (out[section]![key] ??= []).push(line.slice(eq + 1));
  }
  return out;
}

/** ExecStart= → argv: "…" words are JSON strings (as the module writes them), others bare. */
export function execArgv(execStart: string): string[] {
  const words = execStart.match(/"(?:[^"\\]|\\.)*"|\S+/g) ?? [];
  return words.map((w) => (w.startsWith('"') ? (JSON.parse(w) as string) : w).replace(/%%/g, '%').replace(/\$\$/g, '$'));
}

/** The value systemd uses for a single-valued key (the last one). */
export function single(unit: Record<string, Record<string, string[]>>, section: string, key: string): string | undefined {
  const v = unit[section]?.[key];
  return v === undefined ? undefined : v[v.length - 1];
}
