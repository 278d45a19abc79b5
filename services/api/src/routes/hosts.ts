import type { FastifyInstance } from 'fastify';
import { HostListQuery, HostParams, type HostListResponse, type HostRecord, type HostView, type MaintenanceRecord } from '@ferry/protocol';
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
    const removed = new Set((await store.removedHosts.all()).map((r) => r.hostId));
    const maintenance = new Map((await store.maintenance.all()).map((m) => [m.hostId, m]));
    const hosts = (await store.hosts.all()).map((host) => view(host, now, maintenance.get(host.id) ?? null, removed.has(host.id)));
    return { hosts: hosts.filter((host) => !query.state || host.state === query.state) };
  });

  /** State changes, fencing, restarts, stale copies discarded — newest first. */
  app.get('/v1/hosts/:id/history', async (request) => {
    const { id } = parseRequest(HostParams, request.params, 'params');
    if (!(await store.hosts.get(id))) throw new ApiError('NOT_FOUND', `no host ${id}`, { id });
    return { hostId: id, history: await store.history(id) };
  });

  app.get('/v1/failovers', async () => {
    const failovers = (await store.failovers.all()).sort((a, b) => b.startedAt - a.startedAt);
    return { failovers };
  });

  app.get('/v1/hosts/:id', async (request): Promise<HostView> => {
    const { id } = parseRequest(HostParams, request.params, 'params');
    const host = await store.hosts.get(id);
    if (!host) throw new ApiError('NOT_FOUND', `no host ${id}`, { id });
    return view(host, Date.now(), await store.maintenance.get(id), (await store.removedHosts.get(id)) !== null);
  });
}
