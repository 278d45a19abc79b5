import type { FastifyInstance } from 'fastify';
import { WorkloadLogsQuery, WorkloadParams, type LogChunk } from '@ferry/protocol';
import type { ClusterStore } from '@ferry/store';
import { ApiError, parseRequest } from '../errors.ts';
import type { LogsAsker } from '../logs.ts';

/** how often a follow asks for more when the last answer had nothing new */
export const FOLLOW_POLL_MS = 500;
const HEARTBEAT_MS = 15_000;
/** follows one API process serves at once (each polls an agent twice a second) */
export const MAX_LOG_STREAMS = 64;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `GET /v1/workloads/:id/logs`: a workload's console output, asked of the agent of the host it is
 * on (operator role: a console log can hold secrets a viewer must not read). Without `follow`,
 * one chunk (JSON): the last `tail` lines, or what follows offset `from`. With `follow=1`,
 * server-sent events: `chunk` events (each a LogChunk, in order, none repeated), a comment every
 * 15 s, and `end` when the workload is deleted. The host is looked up again before every read,
 * so a follow goes on from the same offset on the workload's new host after a migration.
 */
export function logRoutes(app: FastifyInstance, store: ClusterStore, logs: LogsAsker): void {
  let streams = 0;

  const hostOf = async (id: string): Promise<string | null | undefined> => (await store.workloads.get(id))?.hostId;

  app.get('/v1/workloads/:id/logs', async (request, reply) => {
    const { id } = parseRequest(WorkloadParams, request.params, 'params');
    const query = parseRequest(WorkloadLogsQuery, request.query, 'query');
    const hostId = await hostOf(id);
    if (hostId === undefined) throw new ApiError('NOT_FOUND', `no workload ${id}`, { id });
    if (!query.follow) {
      if (hostId === null) throw new ApiError('CONFLICT', `${id} is on no host right now (pending, or lost): no console log to read`, { id });
      const asked = await logs.ask(hostId, { workloadId: id, from: query.from, tail: query.tail });
      if (!asked.ok) throw new ApiError('UNAVAILABLE', `the console log of ${id} cannot be read on ${hostId} right now: ${asked.message}`, { id, hostId });
      return asked.chunk;
    }
    if (streams >= MAX_LOG_STREAMS) throw new ApiError('UNAVAILABLE', `already ${MAX_LOG_STREAMS} log streams open here: try again later, or use another API replica`);
    streams++;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(`: ferry logs ${id}\n\n`);
    let open = true;
    const heartbeat = setInterval(() => res.write(': ping\n\n'), HEARTBEAT_MS);
    request.raw.on('close', () => {
      open = false;
      clearInterval(heartbeat);
      streams--;
    });
    const send = (event: string, data: unknown, eventId?: number) => res.write(`${eventId === undefined ? '' : `id: ${eventId}\n`}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    let from = query.from;
    let lastHost: string | null = null;
    try {
      while (open) {
        const host = await hostOf(id);
        if (host === undefined) {
          send('end', { reason: `workload ${id} was deleted` });
          break;
        }
        const asked = host === null ? null : await logs.ask(host, { workloadId: id, from, tail: query.tail });
        if (!asked?.ok) {
          // moving, pending, or its agent busy: ask its (maybe new) host again shortly
          await sleep(FOLLOW_POLL_MS);
          continue;
        }
        const chunk: LogChunk = asked.chunk;
        if (lastHost !== null && chunk.hostId !== lastHost) res.write(`: now on ${chunk.hostId}\n\n`);
        lastHost = chunk.hostId;
        // the offset is the event id: a client reconnects with from=<last id> and misses nothing
        if (chunk.text.length > 0 || from === undefined || chunk.skipped > 0) send('chunk', chunk, chunk.next);
        const more = chunk.next > chunk.start; // something came: there may be more at once
        from = chunk.next;
        if (!more) await sleep(FOLLOW_POLL_MS);
      }
    } catch (err) {
      request.log.warn({ err, workload: id }, 'log follow ended by an error');
    } finally {
      clearInterval(heartbeat);
      res.end();
    }
  });
}
