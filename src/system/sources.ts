// What a toplevel was built from (provenance): the schema of what the loop records in
// state.json (state/model.ts `systems`) and the NixOS module writes into every toplevel it
// builds (nixos-desync-sources.json).
import { z } from 'zod';

/** What a toplevel was built from (provenance), kept by toplevel store path. */
export const systemSourcesSchema = z.object({
  /** The run that built it (null: written into the toplevel by the module without a pin set yet). */
  runId: z.string().nullable(),
  /** When the loop committed it (null when only the toplevel's own file says). */
  builtAt: z.iso.datetime({ offset: true }).nullable(),
  nixpkgs: z.object({ revision: z.string(), path: z.string() }),
  desyncs: z.record(z.string(), z.object({ revision: z.string(), desyncAge: z.number().int().min(0), path: z.string() })),
});
export type SystemSources = z.infer<typeof systemSourcesSchema>;
