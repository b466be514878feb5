// Machine-readable state under <stateDir>: versioned and validated on every read.
import { z } from 'zod';
import { systemSourcesSchema, type SystemSources } from '../system/sources.js';

/**
 * 2: rolled_back runs, rollbacks, health, the rejected candidate, provenance (`systems`).
 * 3: rejected candidates are a bounded set, each with its identity (`id`).
 * Older files are migrated on read (migrateState).
 */
export const STATE_VERSION = 3;
export const HISTORY_VERSION = 1;
export const JOURNAL_VERSION = 1;

const iso = z.iso.datetime({ offset: true });
const storePath = z.string().regex(/^\/[^\0]*$/);

export const pinSchema = z.object({
  path: storePath,
  storePath: storePath,
  revision: z.string().min(1),
  desyncAge: z.number().int().min(0),
  /** When the pin last followed the channel. */
  pinnedAt: iso,
});
export type Pin = z.infer<typeof pinSchema>;

export const heldBackStageSchema = z.enum(['gate', 'health']);
export type HeldBackStage = z.infer<typeof heldBackStageSchema>;
export const heldBackSchema = z.object({
  stage: heldBackStageSchema,
  since: iso,
  reason: z.string(),
  /** Stage `health`: the earliest time it is activated at a newer revision again. */
  retryAt: iso.nullable().default(null),
});
export type HeldBack = z.infer<typeof heldBackSchema>;

export const desyncRecordSchema = z.object({
  attempts: z.object({ passed: z.number().int().min(0), failed: z.number().int().min(0) }),
  consecutiveFailures: z.number().int().min(0),
  lastAttempt: z.object({ at: iso, result: z.enum(['passed', 'failed']), error: z.string().optional() }).nullable(),
  lastSuccessAt: iso.nullable(),
  /** First failed attempt after the last success (start of "behind"). */
  behindSince: iso.nullable(),
  breached: z.boolean(),
  breachReason: z.string().nullable().default(null),
  /**
   * Why the desync stays on its pin now (null: it follows the channel): its own gate failed
   * (`gate`), or it was held back at runtime (`health`, step 8b; `retryAt`: not activated at a
   * newer revision before then, health.retryAfter). `since`: the start of the hold.
   */
  heldBack: heldBackSchema.nullable().default(null),
  /** Health gate failures attributed to this desync (runtime hold-backs, bisect culprits). */
  runtimeFailures: z.number().int().min(0).default(0),
});
export type DesyncRecord = z.infer<typeof desyncRecordSchema>;

export const runResultSchema = z.enum(['success', 'failure', 'breach', 'rolled_back', 'rollback_failed', 'held']);
export const RUN_RESULTS = runResultSchema.options;
export type RunResult = z.infer<typeof runResultSchema>;

export const runSummarySchema = z.object({
  id: z.string(),
  at: iso,
  finishedAt: iso,
  result: runResultSchema,
  durationSeconds: z.number().min(0),
  stages: z.record(z.string(), z.number().min(0)),
  error: z.string().nullable().default(null),
});
export type RunSummary = z.infer<typeof runSummarySchema>;

// Provenance (what a toplevel was built from) is the running system's business: src/system/sources.ts.
export { systemSourcesSchema, type SystemSources };

export const rollbackReasonSchema = z.enum(['activation', 'health']);
export type RollbackReason = z.infer<typeof rollbackReasonSchema>;

/** At most this many rejected candidates are remembered (the oldest is forgotten first). */
export const REJECTED_MAX = 16;

/** A candidate a rollback rejected: skipped until `--retry`. */
export const rejectedCandidateSchema = z.object({
  /** The candidate's identity (Candidate.id); null for one migrated from state version 2 (matched by path + revision). */
  id: z.string().min(1).nullable(),
  revision: z.string(),
  path: z.string(),
  runId: z.string(),
  at: iso,
  reason: rollbackReasonSchema,
});
export type RejectedCandidate = z.infer<typeof rejectedCandidateSchema>;

export const holdReasonSchema = z.enum(['soak', 'no_data', 'unreachable']);
export type HoldReason = z.infer<typeof holdReasonSchema>;
export const HOLD_REASONS = holdReasonSchema.options;

export const rolloutStateSchema = z.object({
  /** The nixpkgs revision of the committed system and when it was first committed: the soak clock. */
  adopted: z.object({ revision: z.string(), since: iso }).nullable(),
  /** Runs held by the rollout, since the first of them (null once a run got past the rollout check). */
  held: z.object({ reason: holdReasonSchema, since: iso, revision: z.string(), message: z.string() }).nullable(),
});
export type RolloutState = z.infer<typeof rolloutStateSchema>;
export const rebootBlockSchema = z.enum(['window', 'alerts', 'disabled', 'unreachable']);
export type RebootBlock = z.infer<typeof rebootBlockSchema>;

/** Reboots (DESIGN.md steps 9b–9c): a candidate waiting for its boot, the last boot's health gate, the loop guard. */
export const rebootStateSchema = z.object({
  /**
   * A candidate that went the boot path (switch inhibitors differ, or `system.activate` "boot"):
   * the boot default, never activated live; verify-boot runs its health gate once it is booted.
   * `previous`: the verified system running when it was committed (where a failed boot returns).
   */
  pending: z.object({ toplevel: z.string(), previous: z.string().nullable(), runId: z.string(), at: iso, candidate: z.object({ path: z.string(), revision: z.string(), id: z.string().nullable().default(null) }).nullable(), why: z.string() }).nullable(),
  /** The last `verify-boot`. */
  lastBoot: z.object({ at: iso, booted: z.string().nullable(), success: z.boolean(), error: z.string().nullable() }).nullable(),
  /** Loop guard: the candidate toplevel verify-boot already rebooted away from (never twice for one candidate). */
  fallbackRebootFor: z.string().nullable(),
  /** The last reboot decision (`reboot`, the loop): why no reboot happened (null: it rebooted). */
  lastDecision: z.object({ at: iso, blocked: rebootBlockSchema.nullable(), message: z.string() }).nullable(),
});
export type RebootState = z.infer<typeof rebootStateSchema>;

export function emptyRebootState(): RebootState {
  return { pending: null, lastBoot: null, fallbackRebootFor: null, lastDecision: null };
}

export const stateSchema = z.object({
  version: z.literal(STATE_VERSION),
  committed: z.object({
    setId: z.string().nullable(),
    at: iso.nullable(),
    pins: z.record(z.string(), pinSchema),
  }),
  desyncs: z.record(z.string(), desyncRecordSchema),
  runs: z.object({
    total: z.object({
      success: z.number().int().min(0), failure: z.number().int().min(0), breach: z.number().int().min(0), rolled_back: z.number().int().min(0),
      /** A rollback that failed or could not be confirmed (never counted in `rollbacks`). */
      rollback_failed: z.number().int().min(0).default(0),
      held: z.number().int().min(0).default(0),
    }),
    last: runSummarySchema.nullable(),
    lastSuccessAt: iso.nullable(),
  }),
  rollbacks: z.object({
    total: z.object({ activation: z.number().int().min(0), health: z.number().int().min(0) }),
    last: z.object({ runId: z.string(), at: iso, reason: rollbackReasonSchema, toplevel: z.string(), previous: z.string().nullable(), error: z.string() }).nullable(),
  }),
  /** Outcome of the last health gate (null before the first one). */
  health: z.object({ lastSuccess: z.boolean().nullable(), lastAt: iso.nullable() }),
  /** Candidates rollbacks rejected, oldest first (bounded): each skipped until `--retry`. */
  rejected: z.array(rejectedCandidateSchema).max(REJECTED_MAX),
  /** Provenance: toplevel store path → what it was built from. */
  systems: z.record(z.string(), systemSourcesSchema),
  /** Fleet rollout (config `rollout`): what other rings read about this host, and its hold. */
  rollout: rolloutStateSchema.default({ adopted: null, held: null }),
  /**
   * The last verified system (docs/upgrade-loop.md "Verified system"): `health` — it passed the
   * health gate and was committed; `running` — it ran when a run started and the loop had not
   * left it unconfirmed (the first run's system, or one switched outside the loop). Rollbacks
   * return to it. Null until the first run.
   */
  verified: z.object({ toplevel: z.string(), at: iso, runId: z.string().nullable(), how: z.enum(['health', 'running']) }).nullable().default(null),
  reboot: rebootStateSchema.default(emptyRebootState),
});
export type MachineState = z.infer<typeof stateSchema>;

export const runDesyncOutcomeSchema = z.object({
  name: z.string(),
  result: z.enum(['passed', 'failed']),
  lagRebuilds: z.number().int().min(0),
  breached: z.boolean(),
  revision: z.string().nullable(),
  error: z.string().nullable().default(null),
  /** Failed at the health gate (held back at runtime, step 8b) rather than its own gate. */
  stage: z.enum(['gate', 'health']).optional(),
});
export type RunDesyncOutcome = z.infer<typeof runDesyncOutcomeSchema>;

export const runRecordSchema = runSummarySchema.extend({
  exitCode: z.number().int(),
  candidate: z.object({ path: z.string(), revision: z.string() }).nullable(),
  desyncs: z.array(runDesyncOutcomeSchema),
  evaluations: z.number().int().min(0).default(0),
  /** Step 8b ran (a runtime hold-back): the culprits, the activations and builds it took, and a bisect's trials. */
  holdBack: z.object({
    culprits: z.array(z.string()),
    activations: z.number().int().min(0),
    systemBuilds: z.number().int().min(0),
    healthy: z.boolean(),
    bisect: z.object({
      suspects: z.array(z.string()),
      trials: z.array(z.object({ held: z.array(z.string()), healthy: z.boolean(), failures: z.array(z.string()) })),
      culprit: z.string().nullable(),
    }).optional(),
  }).optional(),
});
export type RunRecord = z.infer<typeof runRecordSchema>;

export const historySchema = z.object({
  version: z.literal(HISTORY_VERSION),
  runs: z.array(runRecordSchema),
});
export type History = z.infer<typeof historySchema>;

export const journalSchema = z.object({
  version: z.literal(JOURNAL_VERSION),
  runId: z.string(),
  pid: z.number().int(),
  pidStartTime: z.string().optional(),
  startedAt: iso,
  stage: z.string(),
  previousSetId: z.string().nullable(),
  candidateSetId: z.string().nullable(),
  child: z.object({ pgid: z.number().int(), startTime: z.string().optional() }).nullable(),
  /**
   * Set before a toplevel is activated: what recovery rolls back (or finishes, once committed).
   * Kept until a rollback is confirmed. `bootId`: the boot it was activated in.
   */
  activation: z.object({ toplevel: z.string(), previous: z.string().nullable(), mode: z.string(), bootId: z.string().optional() }).nullable().default(null),
  /**
   * Written before a rollback starts, so a run killed inside its rollback loses no verdict:
   * `reason` null is an interruption (no verdict: nothing counted or rejected).
   */
  verdict: z.object({
    reason: rollbackReasonSchema.nullable(),
    at: iso,
    error: z.string(),
    candidate: z.object({ id: z.string(), revision: z.string(), path: z.string() }).nullable(),
    /** The unhealthy toplevel and the rollback target. */
    toplevel: z.string(),
    previous: z.string().nullable(),
  }).nullable().default(null),
});
export type Journal = z.infer<typeof journalSchema>;

export function emptyState(): MachineState {
  return {
    version: STATE_VERSION,
    committed: { setId: null, at: null, pins: {} },
    desyncs: {},
    runs: { total: { success: 0, failure: 0, breach: 0, rolled_back: 0, rollback_failed: 0, held: 0 }, last: null, lastSuccessAt: null },
    rollbacks: { total: { activation: 0, health: 0 }, last: null },
    health: { lastSuccess: null, lastAt: null },
    rejected: [],
    systems: {},
    rollout: { adopted: null, held: null },
    verified: null,
    reboot: emptyRebootState(),
  };
}

/** An older state.json as the current version (1 → 2 → 3); anything else unchanged. */
export function migrateState(raw: unknown): unknown {
  if (raw === null || typeof raw !== 'object') return raw;
  let doc = raw as Record<string, unknown>;
  if (doc.version === 1) doc = migrateV1(doc);
  if (doc.version === 2) doc = migrateV2(doc);
  return doc;
}

/** Version 1 (before activation and rollback) as version 2. */
function migrateV1(v1: Record<string, unknown> & { runs?: { total?: Record<string, unknown> } }): Record<string, unknown> {
  const fresh = emptyState();
  return {
    ...v1,
    version: 2,
    runs: v1.runs && typeof v1.runs === 'object' ? { ...v1.runs, total: { ...(v1.runs.total ?? {}), rolled_back: 0, rollback_failed: 0 } } : v1.runs,
    rollbacks: fresh.rollbacks,
    health: fresh.health,
    rejected: null,
    systems: {},
  };
}

/** Version 2 (one rejected candidate, known by its revision) as version 3: a set of one, identity unknown. */
function migrateV2(v2: Record<string, unknown>): Record<string, unknown> {
  const r = v2.rejected;
  return { ...v2, version: 3, rejected: r === null || r === undefined ? [] : [{ ...(r as object), id: null }] };
}

export function emptyDesyncRecord(): DesyncRecord {
  return {
    attempts: { passed: 0, failed: 0 },
    consecutiveFailures: 0,
    lastAttempt: null,
    lastSuccessAt: null,
    behindSince: null,
    breached: false,
    breachReason: null,
    heldBack: null,
    runtimeFailures: 0,
  };
}
