import type { FastifyInstance } from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { agentIdentity, HostParams, RemoveHostQuery, TERMINAL_MIGRATION_STATES, type AdmitHostResponse, type RemovedHost, type RemoveHostResponse, type WorkloadRecord } from '@ferry/protocol';
import { withLock, type ClusterStore } from '@ferry/store';
import { ApiError, parseRequest } from '../errors.ts';
import type { HostAdmission } from './join.ts';

const LOCK_MS = 10_000;
const LOCK_TRIES = 20;

/**
 * Taking a dead host out of the cluster, and letting it back:
 * - `DELETE /v1/hosts/:id` only for a host that is down (one that is up or suspect may still be
 *   running its workloads), and without `?force=true` only when it owns no workloads;
 * - with `?force=true` (the host is gone for good) each of its workloads is recorded as `lost`
 *   (no host, the reason in `error`): nothing restarts it, and a copy its host still holds is
 *   discarded by reconciliation if the host is ever admitted again;
 * - a removed host's reports are dropped by the scheduler (no lease, so it fences itself) until
 *   `POST /v1/hosts/:id/admit`;
 * - where this API admits hosts (it has the control plane's secrets), the host's NATS identity is
 *   revoked at once: nats-server reloads and closes its agent's connection, and its credentials
 *   stop working. It comes back only by joining again with a new join token.
 */
export function hostRemovalRoutes(app: FastifyInstance, store: ClusterStore, admission: HostAdmission | null): void {
  app.delete('/v1/hosts/:id', async (request): Promise<RemoveHostResponse> => {
    const { id } = parseRequest(HostParams, request.params, 'params');
    const { force = false } = parseRequest(RemoveHostQuery, request.query, 'query');
    const host = await store.hosts.get(id);
    if (!host) throw new ApiError('NOT_FOUND', `no host ${id}`, { id });
    const already = await store.removedHosts.get(id);
    if (already) throw new ApiError('CONFLICT', `host ${id} was removed already (POST /v1/hosts/${id}/admit lets it back)`, { id, removed: already });
    if (host.state !== 'down') {
      throw new ApiError('CONFLICT', `host ${id} is ${host.state}: only a host that is down can be removed (stop its agent first, or put it in maintenance to empty it)`, {
        id,
        state: host.state,
      });
    }
    const migrations = (await store.migrations.all()).filter((m) => !TERMINAL_MIGRATION_STATES.has(m.state) && (m.source === id || m.destination === id));
    if (migrations.length > 0) {
      throw new ApiError('CONFLICT', `host ${id} takes part in ${migrations.length} migration(s) still under way: ${migrations.map((m) => m.id).join(', ')}`, {
        id,
        migrations: migrations.map((m) => m.id),
      });
    }
    const failover = (await store.failovers.all()).find((f) => f.hostId === id && f.state === 'running');
    if (failover) {
      throw new ApiError('CONFLICT', `host ${id} has a failover still under way (${failover.id}): remove it once its workloads were restarted elsewhere`, { id, failover: failover.id });
    }
    const owned = (await store.workloads.all()).filter((w) => w.hostId === id);
    if (owned.length > 0 && !force) {
      throw new ApiError(
        'CONFLICT',
        `host ${id} owns ${owned.length} workload(s): ${owned.map((w) => `${w.spec.id} (${w.phase})`).join(', ')}; if the host is gone for good, ?force=true records them as lost`,
        { id, workloads: owned.map((w) => ({ id: w.spec.id, phase: w.phase })) },
      );
    }
    const now = Date.now();
    // Registered first: from here on the scheduler drops the host's reports, so nothing the host
    // says can race the workloads being recorded lost below.
    const removed: RemovedHost = { hostId: id, removedAt: now, force, lost: owned.map((w) => w.spec.id), wasState: host.state };
    await store.removedHosts.put(id, removed);
    const lost: string[] = [];
    try {
      for (const workload of owned) if (await markLost(store, workload.spec.id, id, now)) lost.push(workload.spec.id);
    } finally {
      // what was recorded lost, exactly (a workload deleted meanwhile is not)
      await store.removedHosts.put(id, { ...removed, lost });
    }
    // steps deferred until the host came back never will run: its copies go through reconciliation if it is admitted again
    for (const step of await store.deferredSteps.all()) if (step.hostId === id) await store.deferredSteps.remove(`${step.migrationId}:${step.step}`);
    await store.addHistory(id, {
      at: now,
      kind: 'removed',
      message: force ? `removed by an operator (gone for good); ${lost.length} workload(s) recorded lost: ${lost.join(', ') || 'none'}` : 'removed by an operator',
      data: { force, lost },
    });
    const name = agentIdentity(id).name;
    const identityRevoked = admission ? await admission.secrets.changeIdentities(() => admission.secrets.revoke(name)) : false;
    request.log.warn({ hostId: id, force, lost, identityRevoked }, 'host removed');
    return { hostId: id, removed: { ...removed, lost }, identityRevoked };
  });

  app.post('/v1/hosts/:id/admit', async (request): Promise<AdmitHostResponse> => {
    const { id } = parseRequest(HostParams, request.params, 'params');
    const removed = await store.removedHosts.get(id);
    if (!removed) {
      if (!(await store.hosts.get(id))) throw new ApiError('NOT_FOUND', `no host ${id}`, { id });
      throw new ApiError('CONFLICT', `host ${id} is not removed: nothing to admit`, { id });
    }
    await store.removedHosts.remove(id);
    await store.addHistory(id, { at: Date.now(), kind: 'admitted', message: 'admitted again by an operator: its reports count from now on', data: removed });
    request.log.info({ hostId: id }, 'host admitted again');
    return { hostId: id, admitted: true, removed };
  });
}

/**
 * Records one workload of a removed host as lost, under the workload's lock (a job on it decides
 * first). False when it no longer belongs to the host (deleted or moved meanwhile).
 */
async function markLost(store: ClusterStore, workloadId: string, hostId: string, at: number): Promise<boolean> {
  for (let attempt = 0; attempt < LOCK_TRIES; attempt++) {
    const held = await withLock(store.redis, store.keys.workloadLock(workloadId), `remove-host-${hostId}`, LOCK_MS, async () => {
      const current = await store.workloads.get(workloadId);
      if (!current || current.hostId !== hostId) return false;
      const lost: WorkloadRecord = {
        ...current,
        hostId: null,
        phase: 'lost',
        migratingTo: null,
        error: { code: 'HOST_REMOVED', message: `its host ${hostId} was removed for good (DELETE /v1/hosts/${hostId}?force=true)`, details: { hostId, phase: current.phase } },
        updatedAt: at,
      };
      await store.workloads.put(workloadId, lost);
      return true;
    });
    if (held) return held.value;
    await sleep(250);
  }
  throw new ApiError('CONFLICT', `workload ${workloadId} stayed busy (a job holds it); try again`, { workload: workloadId });
}
