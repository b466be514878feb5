// Every source file small enough to read at once: none over MAX_LINES unless its first lines say
// why (a comment starting `Long file:`), so growing past it is a decision, not an accident.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAX_LINES = 300;
const HEAD_LINES = 10;

function files(dir: string, ext: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? files(p, ext) : e.name.endsWith(ext) ? [p] : [];
  });
}

/** Files over the limit that do not say why in their first lines, with their sizes. */
function oversized(paths: string[], marker: RegExp): string[] {
  return paths.flatMap((p) => {
    const lines = readFileSync(p, 'utf8').split('\n');
    const n = lines.length - (lines.at(-1) === '' ? 1 : 0);
    const says = lines.slice(0, HEAD_LINES).some((l) => marker.test(l));
    return n > MAX_LINES && !says ? [`${relative(ROOT, p)}: ${n} lines`] : [];
  });
}

describe('file sizes', () => {
  it(`no file in src/ is over ${MAX_LINES} lines unless it says why at its top (// Long file: …)`, () => {
    expect(oversized(files(join(ROOT, 'src'), '.ts'), /^\/\/ Long file: \S/)).toEqual([]);
  });

  it(`no part of the NixOS module is over ${MAX_LINES} lines unless it says why at its top (# Long file: …)`, () => {
    const parts = [join(ROOT, 'nix', 'module.nix'), ...files(join(ROOT, 'nix', 'module'), '.nix')];
    expect(parts.length).toBeGreaterThan(5);
    expect(oversized(parts, /^# Long file: \S/)).toEqual([]);
  });
});
