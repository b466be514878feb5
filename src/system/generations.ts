// The profile's generations (`<profilesDir>/system-N-link`) with what each was built from:
// `nixos-desync generations` and the provenance kept in state.json.
import { lstat, readdir, readFile, readlink, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { systemSourcesSchema, type SystemSources } from './sources.js';
import { GENERATION_LINK_RE } from './running.js';

export interface Generation {
  generation: number;
  toplevel: string | null;
  timestamp: string | null;
  current: boolean;
  booted: boolean;
}

/** The file the NixOS module writes into every toplevel it builds (`system.systemBuilderCommands`). */
export const TOPLEVEL_SOURCES_FILE = 'nixos-desync-sources.json';

/** Newest first. */
export async function listGenerations(profilesDir: string, runDir: string): Promise<Generation[]> {
  const names = await readdir(profilesDir).catch(() => [] as string[]);
  const current = await readlink(join(profilesDir, 'system')).catch(() => null);
  const booted = await realpath(join(runDir, 'booted-system')).catch(() => null);
  const out: Generation[] = [];
  for (const n of names) {
    const m = GENERATION_LINK_RE.exec(n);
    if (!m) continue;
    const link = join(profilesDir, n);
    const toplevel = await realpath(link).catch(() => null);
    const st = await lstat(link).catch(() => null);
    out.push({
      generation: Number(m[1]),
      toplevel,
      timestamp: st ? st.mtime.toISOString() : null,
      current: current !== null && current.split('/').pop() === n,
      booted: toplevel !== null && toplevel === booted,
    });
  }
  return out.sort((a, b) => b.generation - a.generation);
}

/** The contract's `sources` object of a generation (DESIGN.md `generations --json`). */
export function contractSources(s: SystemSources): Record<string, unknown> {
  return {
    runId: s.runId,
    builtAt: s.builtAt,
    nixpkgs: { revision: s.nixpkgs.revision, path: s.nixpkgs.path },
    desyncs: Object.fromEntries(Object.entries(s.desyncs).map(([n, d]) => [n, { revision: d.revision, desyncAge: d.desyncAge, path: d.path, heldBack: d.heldBack ?? null }])),
  };
}

/** Provenance by toplevel store path, as state.json keeps it (`systems`). */
export type SystemsRecord = Record<string, SystemSources>;

/** Sources of `toplevel`: the loop's record (state.json `systems`), else the file the module wrote into the toplevel, else null. */
export async function sourcesOf(toplevel: string | null, systems: SystemsRecord): Promise<SystemSources | null> {
  if (toplevel === null) return null;
  return systems[toplevel] ?? (await readToplevelSources(toplevel));
}

/** `<toplevel>/nixos-desync-sources.json` (written by the NixOS module), or null. */
export async function readToplevelSources(toplevel: string): Promise<SystemSources | null> {
  try {
    const r = systemSourcesSchema.safeParse(JSON.parse(await readFile(join(toplevel, TOPLEVEL_SOURCES_FILE), 'utf8')));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** Provenance worth keeping: toplevels still in the profile, running or booted, plus `keep`. */
export async function pruneSystems(systems: SystemsRecord, profilesDir: string, runDir: string, keep: string[]): Promise<SystemsRecord> {
  const live = new Set(keep);
  for (const g of await listGenerations(profilesDir, runDir)) if (g.toplevel) live.add(g.toplevel);
  for (const l of ['current-system', 'booted-system']) {
    const p = await realpath(join(runDir, l)).catch(() => null);
    if (p) live.add(p);
  }
  return Object.fromEntries(Object.entries(systems).filter(([t]) => live.has(t)));
}
