import { z } from 'zod';
import { HostId } from './ids.ts';
import { WorkloadId } from './workloads.ts';
import { nextCursorField, pageQuery } from './paging.ts';

/** The steps of a migration, in order (see shared DESIGN.md, "The live migration"). */
export const MIGRATION_PHASES = ['validate', 'reserve', 'prepare', 'presync', 'precopy', 'freeze', 'transfer', 'restore', 'verify', 'commit', 'cleanup'] as const;
export const MigrationPhase = z.enum(MIGRATION_PHASES);
export type MigrationPhase = z.infer<typeof MigrationPhase>;

/**
 * How memory moves. lazy: post-copy (CRIU lazy pages, freeze flat in memory size); page-server:
 * stop-and-copy straight into the destination's page server; precopy: iterative pre-dumps, only
 * where the kernel tracks dirty memory; stop-and-copy: dump to files, rsync, restore; cold: the
 * workload is stopped, only its root filesystem moves.
 */
export const MIGRATION_STRATEGIES = ['lazy', 'page-server', 'precopy', 'stop-and-copy', 'cold'] as const;
export const MigrationStrategy = z.enum(MIGRATION_STRATEGIES);
export type MigrationStrategy = z.infer<typeof MigrationStrategy>;

export const MIGRATION_STATES = ['queued', 'running', 'rolling-back', 'completed', 'rolled-back', 'failed'] as const;
export const MigrationState = z.enum(MIGRATION_STATES);
export type MigrationState = z.infer<typeof MigrationState>;
export const TERMINAL_MIGRATION_STATES: ReadonlySet<MigrationState> = new Set(['completed', 'rolled-back', 'failed']);

export const TimelineEntry = z.object({
  phase: MigrationPhase,
  startedAt: z.number().int(),
  endedAt: z.number().int().nullable(),
  ms: z.number().nonnegative().nullable(),
  bytes: z.number().int().nonnegative().optional(),
  note: z.string().optional(),
  /** where the phase's time went, where its agents or the scheduler timed its steps (the cleanup: waiting for the last page, removals) */
  steps: z
    .array(z.object({ step: z.string().max(120), ms: z.number().nonnegative() }))
    .max(32)
    .optional(),
});
export type TimelineEntry = z.infer<typeof TimelineEntry>;

export const MigrationError = z.object({ code: z.string(), message: z.string(), phase: MigrationPhase.nullable() });
export type MigrationError = z.infer<typeof MigrationError>;

/**
 * What a migration was expected to cost when it was asked for: the freeze and the whole duration,
 * from the cost model scaled by what earlier migrations measured (see predictMove in @ferry/core).
 */
export const MigrationPrediction = z.object({
  freezeMs: z.number().nonnegative(),
  seconds: z.number().nonnegative(),
  /** bytes on the link: memory, plus the root filesystem unless a shared pool holds it */
  bytes: z.number().nonnegative(),
  /** the workload's memory in use when the prediction was made (what the freeze scales with) */
  memoryBytes: z.number().nonnegative(),
  /** what the prediction learned from: 'model' (no measurement yet), or the measured migrations it scaled by */
  basis: z.string().max(200),
});
export type MigrationPrediction = z.infer<typeof MigrationPrediction>;

/** One completed migration as measured, kept (the last few hundred) for predictions to learn from. */
export const MeasuredMigration = z.object({
  migrationId: z.string().max(120),
  strategy: MigrationStrategy,
  source: HostId,
  destination: HostId,
  memoryBytes: z.number().nonnegative(),
  bytes: z.number().nonnegative(),
  /** null where nothing froze (a cold move) */
  freezeMs: z.number().nonnegative().nullable(),
  seconds: z.number().nonnegative(),
  predicted: MigrationPrediction.nullable(),
  at: z.number().int(),
});
export type MeasuredMigration = z.infer<typeof MeasuredMigration>;

export const MigrationRecord = z.object({
  id: z.string(),
  workloadId: WorkloadId,
  source: HostId,
  destination: HostId,
  /** why this destination (given by the caller, or chosen by placement) */
  destinationReason: z.string(),
  requested: z.object({ mode: z.enum(['auto', 'live', 'cold']), strategy: MigrationStrategy.nullable() }),
  strategy: MigrationStrategy,
  strategyReason: z.string(),
  state: MigrationState,
  /** the phase being run (or rolled back from) */
  phase: MigrationPhase,
  completed: z.array(MigrationPhase),
  timeline: z.array(TimelineEntry),
  bytes: z.object({ sent: z.number().int().nonnegative(), total: z.number().int().nonnegative() }),
  rounds: z.number().int().nonnegative(),
  freeze: z.object({
    /** from the start of the final dump to the restored workload running, as the agents measured it */
    agentMs: z.number().nonnegative().nullable(),
    /**
     * Where agentMs went: each agent's steps inside the freeze, by phase and side, and what lies
     * between them (the replies, the scheduler's record writes, the next request) as one scheduler entry.
     */
    breakdown: z.array(z.object({ phase: MigrationPhase, side: z.enum(['source', 'destination', 'scheduler']), step: z.string(), ms: z.number().nonnegative() })).optional(),
    /** CRIU's own count inside the checkpoint and restore steps (its stats images), where it wrote them */
    criu: z.object({ dumpFrozenMs: z.number().nonnegative().nullable(), restoreMs: z.number().nonnegative().nullable() }).optional(),
  }),
  /** where bytes go: filled by the prepare phase, read by the later ones (and a resuming worker) */
  transfer: z
    .object({
      address: z.ipv4(),
      rsyncPort: z.number().int(),
      pageServerPort: z.number().int().nullable(),
      sharedRootfs: z.boolean(),
      lazyPagesPort: z.number().int().nullable(),
      frozenAt: z.number().int().nullable(),
      /** what the destination's root was prepared from (null: an empty root); absent before it was recorded */
      rootfsBase: z.object({ template: z.string(), version: z.string() }).nullable().optional(),
    })
    .nullable(),
  /** the workload ran before the migration (a cold migration leaves it stopped) */
  wasRunning: z.boolean(),
  epochFrom: z.number().int().positive(),
  epochTo: z.number().int().positive(),
  cancelRequested: z.boolean(),
  error: MigrationError.nullable(),
  rollback: z.object({ reason: z.string(), steps: z.array(z.string()) }).nullable(),
  /** what the migration was expected to cost (absent on records from before predictions) */
  predicted: MigrationPrediction.nullable().optional(),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  finishedAt: z.number().int().nullable(),
});
export type MigrationRecord = z.infer<typeof MigrationRecord>;

/** Job payload on the migrations queue; the job id is the migration id. */
export const MigrationJobData = z.strictObject({ migrationId: z.string().regex(/^m-[a-z0-9-]{1,80}$/) });
export type MigrationJobData = z.infer<typeof MigrationJobData>;

export const MigrationJobProgress = z.object({
  state: MigrationState,
  phase: MigrationPhase,
  bytesSent: z.number().int().nonnegative(),
  bytesTotal: z.number().int().nonnegative(),
  round: z.number().int().nonnegative(),
  freezeMs: z.number().nonnegative().nullable(),
});

/** Published on ferry.events.migrations.<id> at every phase start and end, and at the end. */
export const MigrationEvent = z.object({
  type: z.enum(['migration.phase', 'migration.finished']),
  migrationId: z.string(),
  workloadId: WorkloadId,
  state: MigrationState,
  phase: MigrationPhase,
  status: z.enum(['started', 'done', 'failed', 'rolled-back', 'completed']),
  at: z.number().int(),
  ms: z.number().nonnegative().nullable(),
  /** bytes moved so far and expected, as the record has them at that moment */
  bytes: z.object({ sent: z.number().int().nonnegative(), total: z.number().int().nonnegative() }).optional(),
  strategy: MigrationStrategy.optional(),
  source: z.string().optional(),
  destination: z.string().optional(),
});
export type MigrationEvent = z.infer<typeof MigrationEvent>;

/**
 * Published by the source agent on ferry.events.migrations.<id> while it copies (at most every
 * 500 ms): the running total of the phase's transfer, as rsync counts it.
 */
export const MigrationProgressEvent = z.object({
  type: z.literal('migration.progress'),
  migrationId: z.string().max(128),
  workloadId: WorkloadId,
  phase: z.enum(['presync', 'transfer']),
  bytes: z.number().int().nonnegative(),
  percent: z.number().min(0).max(100),
  at: z.number().int(),
});
export type MigrationProgressEvent = z.infer<typeof MigrationProgressEvent>;

/**
 * A rollback or cleanup step a migration skipped because its host was down; run when the host is
 * up again (field `<migrationId>:<step>` of the deferred-steps hash).
 */
export const DeferredMigrationStep = z.object({
  migrationId: z.string().min(1).max(200),
  workloadId: z.string().min(1).max(200),
  hostId: z.string().min(1).max(200),
  step: z.enum(['resume-source', 'abort-destination', 'finish-source', 'finish-destination']),
  /** the epoch the source held: it resumes only if it still owns the workload at that epoch */
  epochFrom: z.number().int().positive(),
  at: z.number().int().nonnegative(),
});
export type DeferredMigrationStep = z.infer<typeof DeferredMigrationStep>;

export const MigrateRequest = z.strictObject({
  /** where to; omitted: wherever placement finds room */
  destination: HostId.optional(),
  mode: z.enum(['auto', 'live', 'cold']).default('auto'),
  /** force a memory strategy (benchmarks); refused when either host cannot do it */
  strategy: MigrationStrategy.optional(),
});
export type MigrateRequest = z.infer<typeof MigrateRequest>;

/** 200 answer to POST /v1/workloads/:id/migrate?dryRun=true: where and how it would move; nothing moved. */
export const MigrationDryRun = z.object({
  dryRun: z.literal(true),
  /** every check passed (a refusal is an error answer instead) */
  ok: z.literal(true),
  workloadId: WorkloadId,
  source: HostId.nullable(),
  destination: HostId,
  /** why this host: requested and passing every check, or placement's choice among those that pass */
  destinationReason: z.string(),
  strategy: MigrationStrategy,
  strategyReason: z.string(),
  /** the freeze and duration to expect (see MigrationPrediction) */
  predicted: MigrationPrediction,
});
export type MigrationDryRun = z.infer<typeof MigrationDryRun>;

export const MigrateQuery = z.strictObject({
  dryRun: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
});

export const MigrationParams = z.strictObject({ id: z.string().regex(/^m-[a-z0-9-]{1,80}$/, 'not a migration id') });
export const MigrationListQuery = z.strictObject({ workload: WorkloadId.optional(), state: MigrationState.optional(), ...pageQuery });
/** GET /v1/migrations: newest first */
export const MigrationListResponse = z.object({ migrations: z.array(MigrationRecord), ...nextCursorField });
export type MigrationListResponse = z.infer<typeof MigrationListResponse>;

export const newMigrationId = (workloadId: string): string => `m-${workloadId}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
