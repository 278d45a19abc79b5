import { z } from 'zod';
import { API_ERROR_CODES, CAPACITY_REJECTIONS } from './reasons.ts';
import { HostId } from './ids.ts';
import { HostRecord, HostState } from './hosts.ts';

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
});
