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
  desyncs: z.record(z.string(), z.object({
    revision: z.string(), desyncAge: z.number().int().min(0), path: z.string(),
    /** Held back on its pin when this system was built: its gate failed, or at runtime (the run's step 8b), and why. */
    heldBack: z.object({ stage: z.enum(['gate', 'health']), reason: z.string() }).nullable().optional(),
  })),
});
export type SystemSources = z.infer<typeof systemSourcesSchema>;
