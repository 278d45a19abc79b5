import { z } from 'zod';
import { HostId } from './ids.ts';
import { WorkloadId } from './workloads.ts';

/**
 * Usage over the last hour (the console's small charts). Nothing central keeps it: each agent
 * keeps a ring of one sample a minute for itself and each of its containers, in memory, and
 * answers a read-only request for it on `ferry.usage.<host>` (the API may ask; see
 * natsPermissions). A workload's hour is the rings of the hosts it ran on in that hour (its
 * migrations say which), so the cost is one small request per host asked, never a store of
 * 100,000 workloads × 60 samples.
 */
export const usageSubject = (hostId: string): string => `ferry.usage.${hostId}`;

/** one sample a minute, an hour of them */
export const USAGE_SAMPLE_MS = 60_000;
export const USAGE_SAMPLES = 60;

export const UsageSample = z.object({
  at: z.number().int().nonnegative(),
  /** percent of one core, averaged over the report interval the sample was taken from */
  cpuPercent: z.number().nonnegative(),
  memoryBytes: z.number().int().nonnegative(),
  diskBytes: z.number().int().nonnegative().nullable(),
  pids: z.number().int().nonnegative(),
});
export type UsageSample = z.infer<typeof UsageSample>;

/** What the API asks an agent: its own hour, and one container's (or none). */
export const UsageRequest = z.strictObject({ workloadId: WorkloadId.optional() });
export type UsageRequest = z.infer<typeof UsageRequest>;

export const UsageReply = z.object({
  hostId: HostId,
  sampleMs: z.number().int().positive(),
  /** the host's own: its containers' CPU summed, memory in use (total - available), containers' disk, pids */
  host: z.array(UsageSample).max(USAGE_SAMPLES + 1),
  /** the container asked for, when it ran here in the hour (the last sample is the latest report's) */
  workload: z
    .array(UsageSample)
    .max(USAGE_SAMPLES + 1)
    .nullable(),
});
export type UsageReply = z.infer<typeof UsageReply>;

/** GET /v1/hosts/:id/usage */
export const HostUsageResponse = z.object({
  hostId: HostId,
  sampleMs: z.number().int().positive(),
  samples: z.array(UsageSample),
  /** null when the host answered; else why there is no series (down, an agent without usage history) */
  unavailable: z.string().nullable(),
});
export type HostUsageResponse = z.infer<typeof HostUsageResponse>;

/** GET /v1/workloads/:id/usage: the hosts it ran on in the hour, each with its part of the series. */
export const WorkloadUsageResponse = z.object({
  workloadId: WorkloadId,
  sampleMs: z.number().int().positive(),
  /** every sample, oldest first, each with the host it was taken on */
  samples: z.array(UsageSample.extend({ hostId: HostId })),
  hosts: z.array(z.object({ hostId: HostId, unavailable: z.string().nullable() })),
});
export type WorkloadUsageResponse = z.infer<typeof WorkloadUsageResponse>;
