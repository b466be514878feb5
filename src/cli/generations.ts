// `nixos-desync generations`: the profile's generations, newest first, with what each was built
// from (DESIGN.md `generations --json`; `sources` null for a generation the loop did not build).
import type { Config } from '../config/schema.js';
import { createStateStore } from '../state/store.js';
import { contractSources, listGenerations, sourcesOf } from '../system/generations.js';

export interface GenerationDoc {
  generation: number;
  toplevel: string | null;
  timestamp: string | null;
  current: boolean;
  booted: boolean;
  sources: Record<string, unknown> | null;
}

export async function collectGenerations(config: Config): Promise<GenerationDoc[]> {
  const state = (await createStateStore(config.stateDir).readState({ repair: false })).value;
  const out: GenerationDoc[] = [];
  for (const g of await listGenerations(config.profilesDir, config.runDir)) {
    const s = await sourcesOf(g.toplevel, state.systems);
    out.push({ ...g, sources: s ? contractSources(s) : null });
  }
  return out;
}

export function renderGenerations(gens: GenerationDoc[]): string {
  if (gens.length === 0) return 'No system generations in the profile.\n';
  const lines = gens.map((g) => {
    const flags = [g.current ? 'current' : null, g.booted ? 'booted' : null].filter((x) => x !== null).join(',');
    const s = g.sources as { runId: string; nixpkgs: { revision: string }; desyncs: Record<string, { revision: string; desyncAge: number; heldBack: { stage: string } | null }> } | null;
    // A runtime hold-back is shown on the generation it produced (a failed gate reads as the lag alone).
    const lag = (d: { desyncAge: number; heldBack: { stage: string } | null }): string =>
      d.desyncAge > 0 ? ` (lag ${d.desyncAge}${d.heldBack?.stage === 'health' ? ', held back at runtime' : ''})` : '';
    const from = s
      ? `nixpkgs ${s.nixpkgs.revision.slice(0, 12)}` + Object.entries(s.desyncs).map(([n, d]) => `, ${n} ${d.revision.slice(0, 12)}${lag(d)}`).join('') + (s.runId ? ` — run ${s.runId}` : '')
      : 'not built by nixos-desync';
    return `${String(g.generation).padStart(4)}  ${(g.timestamp ?? '-').replace('T', ' ').slice(0, 19)}  ${flags.padEnd(15)} ${from}`;
  });
  return lines.join('\n') + '\n';
}
