import { z } from 'zod';
import { HostId } from './ids.ts';
import { CapacityReport } from './capacity.ts';

/**
 * up: reporting; suspect: reports missed; down: silent past the down threshold; removed: taken out
 * of the cluster by an operator (DELETE /v1/hosts/:id): its reports are dropped until it is
 * admitted again. Liveness only ever decides the first three; `removed` overrides them in views.
 */
export const HOST_STATES = ['up', 'suspect', 'down', 'removed'] as const;
export const HostState = z.enum(HOST_STATES);
export type HostState = z.infer<typeof HostState>;

/** What the scheduler keeps per host (in Redis), and what the API serves. */
export const HostRecord = z.object({
  id: HostId,
  state: HostState,
  stateSince: z.number().int().nonnegative(),
  firstSeenAt: z.number().int().nonnegative(),
  /** scheduler's clock when the newest valid report arrived */
  lastReportAt: z.number().int().nonnegative(),
  capacity: CapacityReport,
  /**
   * silent on the control plane for longer than down-after, but alive on storage (its peers see
   * its heartbeat in their shared pools change): isolated, not failed — kept `suspect`, and its
   * workloads are not restarted elsewhere (docs/failover.md)
   */
  isolated: z.boolean().optional(),
});
export type HostRecord = z.infer<typeof HostRecord>;

/** Published on `ferry.events.hosts` whenever a host changes state. */
export const HostStateEvent = z.object({
  type: z.literal('host.state'),
  hostId: HostId,
  from: HostState.nullable(),
  to: HostState,
  at: z.number().int().nonnegative(),
  /** how long the host had been silent when the change was decided, in ms */
  silentForMs: z.number().int().nonnegative(),
});
export type HostStateEvent = z.infer<typeof HostStateEvent>;

/** Planned maintenance: entering while its workloads leave, in once the last one left. */
export const MaintenanceRecord = z.object({
  hostId: HostId,
  state: z.enum(['entering', 'in']),
  since: z.number().int().nonnegative(),
  /** the evacuation plan carrying its workloads away */
  planId: z.string().nullable(),
  reason: z.string().max(500).optional(),
});
export type MaintenanceRecord = z.infer<typeof MaintenanceRecord>;

/** One line of a host's history: GET /v1/hosts/:id/history. */
export const HostHistoryEntry = z.object({
  at: z.number().int().nonnegative(),
  kind: z.enum(['state', 'fencing', 'failover', 'restart', 'unrecoverable', 'stale-copy', 'removed', 'admitted', 'rebuilt']),
  message: z.string(),
  data: z.unknown().optional(),
});
export type HostHistoryEntry = z.infer<typeof HostHistoryEntry>;

export const FailoverRestart = z.object({
  workload: z.string(),
  priority: z.number().int(),
  to: HostId.nullable(),
  epoch: z.number().int().positive().nullable(),
  status: z.enum(['pending', 'restarted', 'failed', 'unplaceable']),
  reason: z.string(),
  at: z.number().int().nullable(),
});
export type FailoverRestart = z.infer<typeof FailoverRestart>;

/** A dead host's HA workloads being restarted elsewhere: GET /v1/failovers. */
export const FailoverRecord = z.object({
  id: z.string(),
  hostId: HostId,
  state: z.enum(['running', 'completed', 'failed', 'abandoned']),
  /** when the host was declared down */
  detectedAt: z.number().int(),
  startedAt: z.number().int(),
  finishedAt: z.number().int().nullable(),
  restarts: z.array(FailoverRestart),
  /** HA workloads that cannot run elsewhere, and why (never dropped silently) */
  unrecoverable: z.array(z.object({ workload: z.string(), reason: z.string() })),
  /** workloads on the host without HA: they wait for it */
  unprotected: z.array(z.string()),
  note: z.string().optional(),
});
export type FailoverRecord = z.infer<typeof FailoverRecord>;

export const FailoverJobData = z.strictObject({ failoverId: z.string().regex(/^f-[a-z0-9-]{1,100}$/) });
export type FailoverJobData = z.infer<typeof FailoverJobData>;

/** Published on ferry.events.failovers whenever a failover record changes. */
export const FailoverEvent = z.object({ type: z.literal('failover.updated'), at: z.number().int().nonnegative(), failover: FailoverRecord });
export type FailoverEvent = z.infer<typeof FailoverEvent>;
