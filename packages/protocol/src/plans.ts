import { z } from 'zod';
import { HostRecord, MaintenanceRecord } from './hosts.ts';
import { HostId } from './ids.ts';
import { MigrationStrategy } from './migrations.ts';
import { WorkloadId, WorkloadRecord } from './workloads.ts';
import { nextCursorField, pageQuery } from './paging.ts';

export const MOVE_STATUSES = ['pending', 'running', 'completed', 'rolled-back', 'failed', 'cancelled'] as const;
export const PlanMoveStatus = z.enum(MOVE_STATUSES);

export const PlanMove = z.object({
  workload: WorkloadId,
  from: HostId,
  to: HostId,
  strategy: MigrationStrategy,
  predicted: z.object({
    /** bytes on the link: memory, plus the root filesystem unless a shared pool holds it */
    bytes: z.number().nonnegative(),
    seconds: z.number().nonnegative(),
    freezeMs: z.number().nonnegative(),
    /** what it learned from: 'model', or the measured migrations it scaled by (absent on older plans) */
    basis: z.string().max(200).optional(),
  }),
  reason: z.string(),
  status: PlanMoveStatus,
  migrationId: z.string().nullable(),
  /**
   * when it runs: every move of an earlier stage has ended first; the moves of one stage run in
   * parallel (absent on plans made before stages: all at once)
   */
  stage: z.number().int().min(1).optional(),
  /** indexes (in `moves`) of the moves it needs completed first: when one does not complete, it never starts */
  dependsOn: z.array(z.number().int().nonnegative()).optional(),
});
export type PlanMove = z.infer<typeof PlanMove>;

/** A workload an evacuation cannot move, and why: how many hosts refused it, by refusal code, or what it is busy with. */
export const PlanUnplaced = z.object({
  workload: WorkloadId,
  refused: z.record(z.string(), z.number().int().nonnegative()),
  /** the refusals in words */
  reason: z.string(),
  /** what it is doing that keeps it from moving now (being created, migrating…); `refused` is empty then */
  busy: z.string().optional(),
});
export type PlanUnplaced = z.infer<typeof PlanUnplaced>;

/** A plan's score by term, each already weighted: they sum to the score. */
export const ScoreComponents = z.record(z.string(), z.number());
export type ScoreComponents = z.infer<typeof ScoreComponents>;

export const PLAN_STATES = ['planned', 'executing', 'completed', 'failed', 'cancelled'] as const;
export const PlanState = z.enum(PLAN_STATES);

export const PlanRecord = z.object({
  id: z.string().regex(/^p-[a-z0-9-]{1,80}$/),
  kind: z.enum(['rebalance', 'evacuate']),
  state: PlanState,
  /** the cluster revision it was computed at: executing it at another is refused */
  revision: z.string(),
  /** evacuate: the host being emptied */
  hostId: HostId.nullable(),
  scoreBefore: z.number().nullable(),
  scoreAfter: z.number().nullable(),
  moves: z.array(PlanMove),
  /**
   * rebalance: the score's named terms before and after (mem, cpu, disk, instances, overcommit,
   * antiAffinity, draining; each weighted, they sum to the score); absent on older plans
   */
  components: z.object({ before: ScoreComponents, after: ScoreComponents }).optional(),
  /** evacuate: the workloads that cannot leave (a partial evacuation moves the rest) */
  unplaced: z.array(PlanUnplaced).optional(),
  /** why this plan (and why it stopped where it did) */
  reason: z.string(),
  params: z.record(z.string(), z.unknown()),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  finishedAt: z.number().int().nullable(),
});
export type PlanRecord = z.infer<typeof PlanRecord>;

export const PlanParams = z.strictObject({ id: z.string().regex(/^p-[a-z0-9-]{1,80}$/, 'not a plan id') });
export const PlanListQuery = z.strictObject({ state: PlanState.optional(), kind: z.enum(['rebalance', 'evacuate']).optional(), ...pageQuery });
/** GET /v1/plans: newest first */
export const PlanListResponse = z.object({ plans: z.array(PlanRecord), ...nextCursorField });
export type PlanListResponse = z.infer<typeof PlanListResponse>;

export const MAX_REBALANCE_MOVES = 1000;

/** The score's terms a request may weigh (packages/core ScoreWeights); 0 turns a term off. */
export const SCORE_TERMS = ['mem', 'cpu', 'disk', 'instances', 'overcommit', 'antiAffinity', 'draining'] as const;
export const ScoreWeightsRequest = z.strictObject(
  Object.fromEntries(SCORE_TERMS.map((t) => [t, z.number().nonnegative().max(1000).optional()])) as Record<(typeof SCORE_TERMS)[number], z.ZodOptional<z.ZodNumber>>,
);
export type ScoreWeightsRequest = z.infer<typeof ScoreWeightsRequest>;

/**
 * A rebalance runs to convergence by default, within the move cap (a plan of more than 1,000
 * migrations is hours of copying; plan again once it ran) and the planner's time budget.
 */
export const RebalanceRequest = z.strictObject({
  maxMoves: z.number().int().min(1).max(MAX_REBALANCE_MOVES).default(MAX_REBALANCE_MOVES),
  /** how long the planner may search, ms (default 10 s); the plan says when it stopped there */
  timeBudgetMs: z.number().int().min(1).max(60_000).optional(),
  minGain: z.number().nonnegative().max(10).optional(),
  /**
   * the cost of a move, subtracted from its gain when moves are ranked (a penalty, not a divisor):
   * a fixed part and a part per GiB put on the link (docs/placement.md, "Rebalancing")
   */
  moveCost: z.number().nonnegative().max(1).optional(),
  moveCostPerGiB: z.number().nonnegative().max(1).optional(),
  /** the score's weights, each term optional (the planner's defaults for the rest) */
  weights: ScoreWeightsRequest.optional(),
  /** a workload moved less than this long ago stays put (no ping-pong) */
  cooldownMinutes: z
    .number()
    .min(0)
    .max(7 * 24 * 60)
    .default(10),
});
export const DryRunQuery = z.strictObject({
  dryRun: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
});

/**
 * POST /v1/hosts/:id/maintenance?partial=true: move what can leave, list what cannot (default: all
 * or nothing); ?dryRun=true: the evacuation plan it would run, and nothing changes
 */
export const MaintenanceQuery = z.strictObject({
  partial: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
  dryRun: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
});

/** 200 answer to POST /v1/hosts/:id/maintenance?dryRun=true: the plan, not stored; the host untouched. */
export const MaintenancePreview = z.object({
  dryRun: z.literal(true),
  hostId: z.string(),
  plan: PlanRecord.omit({ id: true, createdAt: true, updatedAt: true }),
});
export type MaintenancePreview = z.infer<typeof MaintenancePreview>;

export const MaintenanceRequest = z.strictObject({
  reason: z.string().max(500).optional(),
  mode: z.enum(['spread', 'binpack']).default('spread'),
});

/** Payload of the parent job of a plan's flow; its children are the migrations. */
export const PlanJobData = z.strictObject({ planId: z.string().regex(/^p-[a-z0-9-]{1,80}$/) });
export type PlanJobData = z.infer<typeof PlanJobData>;

export const newPlanId = (kind: string): string => `p-${kind}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

/** GET /v1/cluster/snapshot: the cluster as the planners see it (docs/snapshot.md). */
export const ClusterSnapshotDocument = z.object({
  version: z.literal(1),
  takenAt: z.number().int(),
  revision: z.string(),
  hosts: z.array(HostRecord),
  workloads: z.array(WorkloadRecord),
  maintenance: z.array(MaintenanceRecord).default([]),
});
export type ClusterSnapshotDocument = z.infer<typeof ClusterSnapshotDocument>;
