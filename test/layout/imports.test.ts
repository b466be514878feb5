// The direction of the arrows between src/'s rooms (docs/development.md, "Layout"): a file may
// import from its own directory or from a room below it, never from one above, and no chain of
// imports (type-only and dynamic ones included) comes back to where it started.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/**
 * Bottom to top. `util` is used by everything; `system` reads the running host; `state` is what
 * the loop persists; `rollout` asks the fleet (Prometheus) whether a candidate may be adopted;
 * `upgrade` is the loop; `views` are documents built from state, the host
 * and the loop's policy (status); `watch`/`metrics`/`http` are the exporter; `wire.ts` puts the
 * loop together; `cli` is the entry point; `demo` drives the CLI.
 */
const LAYERS = ['util', 'config', 'nix', 'prometheus', 'system', 'state', 'source', 'reboot', 'rollout', 'upgrade', 'views', 'watch', 'metrics', 'http', 'wire', 'cli', 'demo'] as const;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports of a file: `import … from`, `export … from`, `import('…')`, as src/-relative .ts paths. */
function importsOf(file: string, text: string): string[] {
  const specs = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?\bfrom\s+['"](\.[^'"]+)['"]/gm), ...text.matchAll(/\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g)].map((m) => m[1]!);
  return specs.map((s) => relative(SRC, join(dirname(file), s)).replace(/\.js$/, '.ts'));
}

/** The room of a src/-relative path: its first directory, or the file's name at the top. */
function roomOf(path: string): string {
  const [first, second] = path.split('/');
  return second === undefined ? first!.replace(/\.ts$/, '') : first!;
}

/** Every import from a room to one above it, as "from -> to". */
function upwardImports(graph: Map<string, string[]>): string[] {
  const rank = (room: string): number => (LAYERS as readonly string[]).indexOf(room);
  const out: string[] = [];
  for (const [from, tos] of graph) {
    for (const to of tos) if (rank(roomOf(to)) > rank(roomOf(from))) out.push(`${from} -> ${to}`);
  }
  return out;
}

/** Every import cycle between files, each as the list of files around it. */
function cycles(graph: Map<string, string[]>): string[][] {
  const out: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string): void => {
    state.set(f, 'open');
    stack.push(f);
    for (const to of graph.get(f) ?? []) {
      if (state.get(to) === 'open') out.push([...stack.slice(stack.indexOf(to)), to]);
      else if (!state.has(to)) visit(to);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of [...graph.keys()].sort()) if (!state.has(f)) visit(f);
  return out;
}

function srcGraph(): Map<string, string[]> {
  return new Map(sourceFiles(SRC).map((f) => [relative(SRC, f), importsOf(f, readFileSync(f, 'utf8'))]));
}

describe('src/ import directions', () => {
  it('every room of src/ is in the layer list', () => {
    const rooms = new Set([...srcGraph().keys()].map(roomOf));
    expect([...rooms].filter((r) => !(LAYERS as readonly string[]).includes(r))).toEqual([]);
  });

  it('no import points up', () => {
    expect(upwardImports(srcGraph())).toEqual([]);
  });

  it('no import cycle', () => {
    expect(cycles(srcGraph()).map((c) => c.join(' -> '))).toEqual([]);
  });

  it('the checks see what they must (an upward import, a cycle, a type-only and a dynamic import)', () => {
    const f = join(SRC, 'state', 'x.ts');
    expect(importsOf(f, "import type { A } from '../upgrade/policy.js';\nconst m = await import('./y.js');\nexport { B } from '../util/z.js';"))
      .toEqual(['upgrade/policy.ts', 'util/z.ts', 'state/y.ts']);
    const graph = new Map([
      ['state/status.ts', ['upgrade/policy.ts', 'util/log.ts']],
      ['http/guard.ts', ['http/web-config.ts']],
      ['http/web-config.ts', ['http/guard.ts']],
    ]);
    expect(upwardImports(graph)).toEqual(['state/status.ts -> upgrade/policy.ts']);
    expect(cycles(graph)).toEqual([['http/guard.ts', 'http/web-config.ts', 'http/guard.ts']]);
  });
});
