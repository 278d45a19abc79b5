import { z } from 'zod';
import { API_ERROR_CODES, CAPACITY_REJECTIONS } from './reasons.ts';
import { HostId } from './ids.ts';
import { FailoverRecord, HostRecord, HostState, MaintenanceRecord } from './hosts.ts';
import { WORKLOAD_JOBS } from './jobs.ts';
import { nextCursorField, pageQuery } from './paging.ts';
import { ContainerStatus, ProblemSchema, WorkloadId, WorkloadPhase, WorkloadRecord } from './workloads.ts';

export const ApiErrorBody = z.object({
  code: z.enum(API_ERROR_CODES),
  message: z.string(),
  details: z.unknown().optional(),
});
export type ApiErrorBody = z.infer<typeof ApiErrorBody>;

export const HostParams = z.strictObject({ id: HostId });

/** `?search=`: ids starting with it (lists are in id order, so a prefix is read from the index) */
const IdSearch = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9-]+$/, 'an id prefix: lowercase letters, digits and dashes');

export const HostListQuery = z.strictObject({
  state: HostState.optional(),
  search: IdSearch.optional(),
  ...pageQuery,
});
export type HostListQuery = z.infer<typeof HostListQuery>;

export const HostView = HostRecord.extend({
  /** age of the newest report when the API answered */
  lastReportAgeMs: z.number().int().nonnegative(),
  /** planned maintenance, when the host is in (or entering) it */
  maintenance: MaintenanceRecord.nullable(),
});
export type HostView = z.infer<typeof HostView>;

export const HostListResponse = z.object({ hosts: z.array(HostView), ...nextCursorField });
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

const LABEL_TERM = /^([a-z0-9](?:[a-z0-9._/-]{0,61}[a-z0-9])?)(?:=(.{0,256}))?$/;

/**
 * `?label=tier=web,zone` — every term must hold: `key=value` (that value) or `key` (any value).
 * Values cannot hold a comma.
 */
export const LabelSelector = z
  .string()
  .min(1)
  .max(1024)
  .transform((text, ctx) => {
    const terms: Array<{ key: string; value: string | null }> = [];
    for (const term of text.split(',')) {
      const match = LABEL_TERM.exec(term);
      if (!match) {
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(term.slice(0, 80))} is not a label term: key=value or key, comma-separated` });
        return z.NEVER;
      }
      terms.push({ key: match[1]!, value: match[2] ?? null });
    }
    return terms;
  });
export type LabelSelector = z.output<typeof LabelSelector>;

export const matchesLabels = (labels: Record<string, string>, selector: LabelSelector): boolean =>
  selector.every(({ key, value }) => Object.hasOwn(labels, key) && (value === null || labels[key] === value));

export const WorkloadListQuery = z.strictObject({
  host: HostId.optional(),
  phase: WorkloadPhase.optional(),
  /** labels every workload listed has (see LabelSelector) */
  label: LabelSelector.optional(),
  /** made from this OS template */
  template: z.string().min(1).max(63).optional(),
  search: IdSearch.optional(),
  ...pageQuery,
});

export const StopWorkloadQuery = z.strictObject({
  graceMs: z.coerce.number().int().min(0).max(300_000).optional(),
});

/** POST /v1/workloads/:id/resume: where (default: the host it was suspended on, or on a shared pool the best compatible one). */
export const ResumeWorkloadBody = z.strictObject({ host: HostId.optional() });
export type ResumeWorkloadBody = z.infer<typeof ResumeWorkloadBody>;

/** A workload as the API shows it: the scheduler's record plus what its host reports right now. */
export const WorkloadView = WorkloadRecord.extend({
  observed: ContainerStatus.nullable(),
});
export type WorkloadView = z.infer<typeof WorkloadView>;

export const WorkloadListResponse = z.object({ workloads: z.array(WorkloadView), ...nextCursorField });
export type WorkloadListResponse = z.infer<typeof WorkloadListResponse>;

/** GET /v1/failovers, newest first */
export const FailoverListQuery = z.strictObject({
  host: HostId.optional(),
  state: FailoverRecord.shape.state.optional(),
  ...pageQuery,
});

export const FailoverListResponse = z.object({ failovers: z.array(FailoverRecord), ...nextCursorField });
export type FailoverListResponse = z.infer<typeof FailoverListResponse>;

/** GET /v1/tokens and /v1/join-tokens (a few hundred at most: paged all the same) */
export const TokenListQuery = z.strictObject({ ...pageQuery });

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
