import { z } from 'zod';
import { API_ERROR_CODES, CAPACITY_REJECTIONS } from './reasons.ts';
import { HostId } from './ids.ts';
import { HostRecord, HostState, MaintenanceRecord } from './hosts.ts';
import { WORKLOAD_JOBS } from './jobs.ts';
import { ContainerStatus, ProblemSchema, WorkloadId, WorkloadPhase, WorkloadRecord } from './workloads.ts';

export const ApiErrorBody = z.object({
  code: z.enum(API_ERROR_CODES),
  message: z.string(),
  details: z.unknown().optional(),
});
export type ApiErrorBody = z.infer<typeof ApiErrorBody>;

export const HostParams = z.strictObject({ id: HostId });

export const HostListQuery = z.strictObject({
  state: HostState.optional(),
});
export type HostListQuery = z.infer<typeof HostListQuery>;

export const HostView = HostRecord.extend({
  /** age of the newest report when the API answered */
  lastReportAgeMs: z.number().int().nonnegative(),
  /** planned maintenance, when the host is in (or entering) it */
  maintenance: MaintenanceRecord.nullable(),
});
export type HostView = z.infer<typeof HostView>;

export const HostListResponse = z.object({ hosts: z.array(HostView) });
export type HostListResponse = z.infer<typeof HostListResponse>;

export const CapacityStats = z.object({
  accepted: z.number().int().nonnegative(),
  rejected: z.record(z.enum(CAPACITY_REJECTIONS), z.number().int().nonnegative()),
});
export const StatsResponse = z.object({ capacityReports: CapacityStats });
export type StatsResponse = z.infer<typeof StatsResponse>;

export const HealthResponse = z.object({
  status: z.enum(['ok', 'degraded']),
  redis: z.boolean(),
  /** why it is degraded (Redis unreachable: every other route answers 503 UNAVAILABLE meanwhile) */
  message: z.string().optional(),
});

const booleanParam = z.enum(['true', 'false']).transform((v) => v === 'true');

export const CreateWorkloadQuery = z.strictObject({
  /** start it once created (default true) */
  start: booleanParam.optional(),
});

export const WorkloadParams = z.strictObject({ id: WorkloadId });

export const WorkloadListQuery = z.strictObject({
  host: HostId.optional(),
  phase: WorkloadPhase.optional(),
});

export const StopWorkloadQuery = z.strictObject({
  graceMs: z.coerce.number().int().min(0).max(300_000).optional(),
});

/** A workload as the API shows it: the scheduler's record plus what its host reports right now. */
export const WorkloadView = WorkloadRecord.extend({
  observed: ContainerStatus.nullable(),
});
export type WorkloadView = z.infer<typeof WorkloadView>;

export const JobView = z.object({
  id: z.string(),
  name: z.enum(WORKLOAD_JOBS),
  state: z.string(),
  progress: z.unknown(),
  attemptsMade: z.number().int(),
  failedReason: z.string().nullable(),
  result: z.unknown(),
  data: z.unknown(),
  createdAt: z.number().nullable(),
  finishedAt: z.number().nullable(),
});
export type JobView = z.infer<typeof JobView>;

export const JobParams = z.strictObject({ id: z.string().regex(/^[a-z0-9.-]{1,160}$/, 'not a job id') });

/** 202 answer to every workload operation: the workload now, and the job that carries it out. */
export const WorkloadAccepted = z.object({
  workload: WorkloadView,
  job: z.object({ id: z.string(), name: z.enum(WORKLOAD_JOBS) }),
});
export type WorkloadAccepted = z.infer<typeof WorkloadAccepted>;

/** Advice about a request that was accepted: it works, but probably not as meant. */
export const ApiWarning = z.object({
  /** stable, e.g. HA_POOL_LOCAL */
  code: z.string(),
  message: z.string(),
});
export type ApiWarning = z.infer<typeof ApiWarning>;

/** 202 answer to POST /v1/workloads: as WorkloadAccepted, plus warnings about the spec (empty when none). */
export const WorkloadCreated = WorkloadAccepted.extend({
  warnings: z.array(ApiWarning),
});
export type WorkloadCreated = z.infer<typeof WorkloadCreated>;

export const ProblemList = z.object({ problems: z.array(ProblemSchema) });
