import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApiError, parseRequest } from '../errors.ts';
import { EVENT_KINDS, kindOf, type ClusterEvent, type EventHub } from '../events.ts';

export const EventsQuery = z.strictObject({
  /** comma-separated: host, workload, migration, failover (default all) */
  kinds: z
    .string()
    .optional()
    .transform((v) => (v ? v.split(',') : [...EVENT_KINDS]))
    .pipe(z.array(z.enum(EVENT_KINDS)).min(1)),
  /** only this workload's events (its workload and migration events) */
  workload: z.string().max(64).optional(),
  /** only this migration's events */
  migration: z.string().max(128).optional(),
});

const HEARTBEAT_MS = 15_000;
/** streams one API process serves at once; more get a 503 (each holds a socket and a listener) */
export const MAX_STREAMS = 256;

function matches(event: ClusterEvent, query: z.output<typeof EventsQuery>): boolean {
  if (!query.kinds.includes(kindOf(event))) return false;
  if (query.workload && (!('workloadId' in event) || event.workloadId !== query.workload)) return false;
  if (query.migration && (!('migrationId' in event) || event.migrationId !== query.migration)) return false;
  return true;
}

/**
 * `GET /v1/events`: server-sent events, live (no replay), one `event: <type>` + JSON `data:` per
 * cluster event, a comment every 15 s so proxies keep the connection open.
 */
export function eventRoutes(app: FastifyInstance, hub: EventHub): void {
  app.get('/v1/events', async (request, reply) => {
    const query = parseRequest(EventsQuery, request.query, 'query');
    if (hub.clients >= MAX_STREAMS) throw new ApiError('UNAVAILABLE', `already ${MAX_STREAMS} event streams open here: try again later, or use another API replica`);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': ferry events\n\n');
    const unlisten = hub.listen(
      (event) => {
        if (matches(event, query)) res.write(`event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
      },
      () => res.end(),
    );
    const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    request.raw.on('close', () => {
      clearInterval(heartbeat);
      unlisten();
    });
  });
}
