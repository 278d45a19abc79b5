import { z } from 'zod';
import { HostId } from './ids.ts';
import { WorkloadId } from './workloads.ts';

/** BullMQ queues; keys live under `<keyPrefix>:q:<queue>`. */
export const QUEUES = { workloads: 'workloads', migrations: 'migrations', plans: 'plans', failovers: 'failovers' } as const;
export const queuePrefix = (keyPrefix: string) => `${keyPrefix}:q`;

export const WORKLOAD_JOBS = ['create', 'start', 'stop', 'destroy', 'suspend', 'resume'] as const;
export const WorkloadJobName = z.enum(WORKLOAD_JOBS);
export type WorkloadJobName = z.infer<typeof WorkloadJobName>;

/** Payload of every job on the workloads queue. */
export const WorkloadJobData = z.strictObject({
  workloadId: WorkloadId,
  requestedAt: z.number().int().nonnegative(),
  /** stop: SIGTERM, then SIGKILL after this long */
  graceMs: z.number().int().min(0).max(300_000).optional(),
  /** resume: the host asked for (otherwise the checkpoint's own host, or on a shared pool the best compatible one) */
  host: HostId.optional(),
});
export type WorkloadJobData = z.infer<typeof WorkloadJobData>;

/** Reported through job.updateProgress as the job advances. */
export const WorkloadJobProgress = z.object({
  phase: z.string(),
  hostId: z.string().nullable(),
  message: z.string().optional(),
});
export type WorkloadJobProgress = z.infer<typeof WorkloadJobProgress>;

/** Job ids: unique, readable, free of ':' (BullMQ's key separator). */
export const newJobId = (workloadId: string, name: WorkloadJobName) => `${workloadId}.${name}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
