import { z } from 'zod';
import { HostId } from './ids.ts';
import { CapacityReport } from './capacity.ts';

/** up: reporting; suspect: reports missed; down: silent past the down threshold. */
export const HOST_STATES = ['up', 'suspect', 'down'] as const;
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
