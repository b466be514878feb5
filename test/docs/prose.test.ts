// Checks on the prose of README.md and docs/ that a newcomer tripped over: no reference to a
// contract file that is not in the repository, and a source layout (docs/development.md) that
// names every folder of src/ and only files that exist.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const DOCS = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? [p, ...walk(p)] : [p];
  });
}

describe('README.md and docs/', () => {
  it.each(DOCS)('%s cites no DESIGN.md (not shipped: what users need is in docs/)', (f) => {
    const lines = read(f).split('\n').map((l, i) => `${f}:${i + 1}: ${l}`).filter((l) => /DESIGN(\.md)?\b/.test(l));
    expect(lines, 'say it in docs/ instead of pointing at the design file').toEqual([]);
  });

  it('README.md starts with exactly the two commands, and runs the CLI as installed (its bin keeps the memory flags)', () => {
    const readme = read('README.md');
    expect(readme).toMatch(/^# nixos-desync\n\n```sh\n\.\/scripts\/demo\.sh .*\n\.\/scripts\/test\.sh .*\n```\n/);
    expect(readme).not.toMatch(/node dist\/src\/cli\/main\.js (serve|status|upgrade)/);
  });

  it.each(DOCS)('%s: its command blocks run the CLI as installed, never `node dist/src/cli/main.js` (no memory flags)', (f) => {
    const blocks = [...read(f).matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
    expect(blocks.flatMap((b) => b.split('\n')).filter((l) => /node dist\/src\/cli\/main\.js/.test(l)), 'write `npx nixos-desync …` (the bin)').toEqual([]);
  });

  it('docs/development.md: the layout names every folder of src/, and every file it names exists', () => {
    const md = read('docs/development.md');
    const block = /```\nsrc\/\n([\s\S]*?)```/.exec(md)?.[1] ?? '';
    const all = walk(join(ROOT, 'src')).map((p) => relative(join(ROOT, 'src'), p));
    const dirs = all.filter((p) => statSync(join(ROOT, 'src', p)).isDirectory());
    const missing = dirs.filter((d) => !new RegExp(`^\\s*${d.split('/').at(-1)}/`, 'm').test(block));
    expect(missing, 'add these folders of src/ to the layout in docs/development.md').toEqual([]);
    const files = new Set(all.map((p) => p.split('/').at(-1)!));
    const named = [...block.matchAll(/\b([\w-]+\.ts)\b/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(30);
    expect(named.filter((n) => !files.has(n)), 'docs/development.md names files that are not in src/').toEqual([]);
  });
});
