import type { FastifyInstance } from 'fastify';
import { FailoverListQuery, HostListQuery, HostParams, type FailoverListResponse, type HostListResponse, type HostRecord, type HostView, type MaintenanceRecord } from '@ferry/protocol';
import { ApiError, parseRequest } from '../errors.ts';
import type { ClusterStore } from '@ferry/store';

/** A host an operator removed shows as `removed`, whatever its liveness (its reports are dropped). */
const view = (record: HostRecord, now: number, maintenance: MaintenanceRecord | null, removed: boolean): HostView => ({
  ...record,
  ...(removed ? { state: 'removed' as const } : {}),
  lastReportAgeMs: Math.max(0, now - record.lastReportAt),
  maintenance,
});

export function hostRoutes(app: FastifyInstance, store: ClusterStore): void {
  app.get('/v1/hosts', async (request): Promise<HostListResponse> => {
    const query = parseRequest(HostListQuery, request.query, 'query');
    const now = Date.now();
    const page = await store.hosts.page(
      { limit: query.limit, after: query.cursor },
      {
        ...(query.search ? { prefix: query.search } : {}),
        // each chunk of hosts with its own maintenance and removal records, not every one there is
        view: async (records) => {
          const ids = records.map((h) => h.id);
          const [maintenance, removed] = await Promise.all([store.maintenance.getMany(ids), store.removedHosts.getMany(ids)]);
          return records.map((host, i) => view(host, now, maintenance[i] ?? null, removed[i] != null));
        },
        keep: query.state ? (host) => host.state === query.state : undefined,
      },
    );
    return { hosts: page.items, nextCursor: page.nextCursor };
  });

  /** State changes, fencing, restarts, stale copies discarded — newest first. */
  app.get('/v1/hosts/:id/history', async (request) => {
    const { id } = parseRequest(HostParams, request.params, 'params');
    if (!(await store.hosts.get(id))) throw new ApiError('NOT_FOUND', `no host ${id}`, { id });
    return { hostId: id, history: await store.history(id) };
  });

  /** Newest first (by the detection time in the id). */
  app.get('/v1/failovers', async (request): Promise<FailoverListResponse> => {
    const query = parseRequest(FailoverListQuery, request.query, 'query');
    const page = await store.failovers.page(
      { limit: query.limit, after: query.cursor },
      {
        order: 'newest',
        // ids are f-<host>-<time>: a host's failovers share a prefix (host ids are checked after)
        ...(query.host ? { prefix: `f-${query.host}-` } : {}),
        keep: query.host || query.state ? (f) => (!query.host || f.hostId === query.host) && (!query.state || f.state === query.state) : undefined,
      },
    );
    return { failovers: page.items, nextCursor: page.nextCursor };
  });

  app.get('/v1/hosts/:id', async (request): Promise<HostView> => {
    const { id } = parseRequest(HostParams, request.params, 'params');
    const host = await store.hosts.get(id);
    if (!host) throw new ApiError('NOT_FOUND', `no host ${id}`, { id });
    return view(host, Date.now(), await store.maintenance.get(id), (await store.removedHosts.get(id)) !== null);
  });
}
