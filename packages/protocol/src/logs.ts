import { z } from 'zod';
import { HostId } from './ids.ts';
import { WorkloadId } from './workloads.ts';

/**
 * A container's console output (its stdout and stderr), kept in its workload's directory on its
 * pool (`<pool>/containers/<id>/log/console.log`, rotated at a size cap), so that it moves with
 * the workload: a migration's final copy carries it, a shared pool holds it for every host.
 *
 * Positions are byte offsets since the log began (not since the current file began): the same
 * offset names the same byte on every host the workload runs on, so a reader that goes on from
 * `next` after a migration neither repeats nor skips a line. Nothing central keeps logs: the API
 * asks the workload's current agent on `ferry.logs.<host>` (read-only; see natsPermissions).
 */
export const logsSubject = (hostId: string): string => `ferry.logs.${hostId}`;

/** most bytes one answer carries (well under NATS' 1 MiB message limit) */
export const LOG_CHUNK_BYTES = 256 * 1024;
export const MAX_LOG_TAIL_LINES = 10_000;

export const LogsRequest = z.strictObject({
  workloadId: WorkloadId,
  /** go on from this offset (a previous answer's `next`); absent: the last `tail` lines */
  from: z.number().int().nonnegative().optional(),
  tail: z.number().int().min(0).max(MAX_LOG_TAIL_LINES).default(100),
});
export type LogsRequest = z.input<typeof LogsRequest>;

export const LogChunk = z.object({
  hostId: HostId,
  workloadId: WorkloadId,
  /** offset of the first byte of `text` */
  start: z.number().int().nonnegative(),
  /** offset after the last byte of `text`: where the next read goes on */
  next: z.number().int().nonnegative(),
  text: z.string(),
  /** bytes between the asked `from` and `start` that rotation had already dropped */
  skipped: z.number().int().nonnegative(),
});
export type LogChunk = z.infer<typeof LogChunk>;

export const LogsReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), chunk: LogChunk }),
  z.object({ ok: z.literal(false), code: z.enum(['BAD_REQUEST', 'NOT_FOUND', 'UNREADABLE']), message: z.string() }),
]);
export type LogsReply = z.infer<typeof LogsReply>;

const booleanParam = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/** GET /v1/workloads/:id/logs */
export const WorkloadLogsQuery = z.strictObject({
  /** the last N lines (default 100) when `from` is not given */
  tail: z.coerce.number().int().min(0).max(MAX_LOG_TAIL_LINES).default(100),
  /** go on from this offset (a previous answer's `next`, or a stream's last `next`) */
  from: z.coerce.number().int().nonnegative().optional(),
  /** stream (server-sent events) what the container writes from then on, across migrations */
  follow: booleanParam.default(false),
});

/** GET /v1/workloads/:id/logs (not following); each `chunk` event of a follow has the same shape */
export const WorkloadLogsResponse = LogChunk;
export type WorkloadLogsResponse = LogChunk;
