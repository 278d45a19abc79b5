import { z } from 'zod';
import { HostId } from './ids.ts';

/** A host an operator took out of the cluster (DELETE /v1/hosts/:id), until admitted again. */
export const RemovedHost = z.object({
  hostId: HostId,
  removedAt: z.number().int().nonnegative(),
  /** removed with ?force=true: its workloads were recorded as lost */
  force: z.boolean(),
  /** the workloads recorded as lost with it */
  lost: z.array(z.string()),
  /** the host's state when it was removed */
  wasState: z.string(),
});
export type RemovedHost = z.infer<typeof RemovedHost>;

export const RemoveHostQuery = z.strictObject({
  /** the host is gone for good: its workloads are recorded as lost */
  force: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
});
export type RemoveHostQuery = z.infer<typeof RemoveHostQuery>;

export const RemoveHostResponse = z.object({
  hostId: HostId,
  removed: RemovedHost,
  /** its NATS identity was revoked (its agent is cut off now; it joins again with a new join token) */
  identityRevoked: z.boolean(),
});
export type RemoveHostResponse = z.infer<typeof RemoveHostResponse>;

export const AdmitHostResponse = z.object({ hostId: HostId, admitted: z.literal(true), removed: RemovedHost });
export type AdmitHostResponse = z.infer<typeof AdmitHostResponse>;

/**
 * A copy of a deleted workload on a host that was down or removed when it was deleted: discarded
 * (container and root filesystem) when that host reports it again.
 */
export const CopyToDiscard = z.object({
  hostId: HostId,
  workloadId: z.string().min(1).max(200),
  at: z.number().int().nonnegative(),
  reason: z.string().max(500),
});
export type CopyToDiscard = z.infer<typeof CopyToDiscard>;
