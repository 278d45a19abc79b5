import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApiError, parseRequest } from '../errors.ts';
import { EVENT_KINDS, REPLAY_EVENTS, kindOf, type ClusterEvent, type EventHub } from '../events.ts';

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
  /** start with up to this many of the latest events (of those this API process kept), then live */
  recent: z.coerce.number().int().min(0).max(REPLAY_EVENTS).default(0),
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
 * `GET /v1/events`: server-sent events, one `id:` + `event: <type>` + JSON `data:` per cluster
 * event, a comment every 15 s so proxies keep the connection open. It starts with the events a
 * client reconnecting with `Last-Event-ID` missed (when this API process sent that id), else with
 * the latest `recent` ones, then a `: live` comment, then goes on live; a replayed event matches
 * the same filters.
 */
export function eventRoutes(app: FastifyInstance, hub: EventHub): void {
  app.get('/v1/events', async (request, reply) => {
    const query = parseRequest(EventsQuery, request.query, 'query');
    if (hub.clients >= MAX_STREAMS) throw new ApiError('UNAVAILABLE', `already ${MAX_STREAMS} event streams open here: try again later, or use another API replica`);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': ferry events\n\n');
    const send = (event: ClusterEvent, id: string) => {
      if (matches(event, query)) res.write(`id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
    };
    const lastEventId = request.headers['last-event-id'];
    for (const { id, event } of hub.replay({ recent: query.recent, lastEventId: typeof lastEventId === 'string' ? lastEventId : undefined })) send(event, id);
    res.write(': live\n\n'); // what follows happens now (a console animates it; the replay it only lists)
    const unlisten = hub.listen(send, () => res.end());
    const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    request.raw.on('close', () => {
      clearInterval(heartbeat);
      unlisten();
    });
  });
}
