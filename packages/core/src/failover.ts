import type { WorkloadRecord } from '@ferry/protocol';
import { DEFAULT_PLACEMENT_POLICY, placeWorkload, type PlacementPolicy } from './placement.ts';
import { sharedPoolProven, type ClusterSnapshot } from './snapshot.ts';

export type RestartDecision = { ok: true; to: string; reason: string } | { ok: false; unrecoverable: boolean; reason: string };

/** HA workloads of a dead host, highest priority first (then the larger, then by id: deterministic). */
export function haWorkloadsOf(snapshot: ClusterSnapshot, hostId: string): WorkloadRecord[] {
  return snapshot.workloads
    .filter((w) => w.hostId === hostId && w.spec.ha.enabled && (w.phase === 'running' || w.phase === 'starting' || w.phase === 'migrating'))
    .sort((a, b) => b.spec.ha.priority - a.spec.ha.priority || b.spec.resources.memoryMiB - a.spec.resources.memoryMiB || a.spec.id.localeCompare(b.spec.id));
}

/**
 * Where a dead host's HA workload restarts: a host that passes the feasibility checks a migration
 * passes (feasibility.ts: CPU, networks, pool, room, anti-affinity, not in maintenance; no CRIU,
 * it is a restart) and provably shares the pool its root filesystem is on with the dead host — so
 * it needs no disk room: the root filesystem is already there. A local pool is unrecoverable: the root filesystem died
 * with the host.
 */
export function restartTarget(workload: WorkloadRecord, deadHost: string, snapshot: ClusterSnapshot, policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY): RestartDecision {
  const dead = snapshot.hosts.find((h) => h.id === deadHost);
  const pool = dead?.capacity.pools.find((p) => p.id === workload.spec.pool);
  if (!pool?.shared) {
    return { ok: false, unrecoverable: true, reason: `its root filesystem is on ${pool ? 'local' : 'an unknown'} pool ${workload.spec.pool} of ${deadHost}, which died with the host` };
  }
  const sharers = snapshot.hosts.filter((h) => h.id !== deadHost && sharedPoolProven(snapshot, workload.spec.pool, deadHost, h.id)).map((h) => h.id);
  if (sharers.length === 0) {
    return { ok: false, unrecoverable: true, reason: `no live host is proven to share pool ${workload.spec.pool} with ${deadHost}` };
  }
  const allowed = workload.spec.placement.hosts.length > 0 ? sharers.filter((h) => workload.spec.placement.hosts.includes(h)) : sharers;
  const spec = { ...workload.spec, placement: { ...workload.spec.placement, hosts: allowed.length > 0 ? allowed : ['(none)'] } };
  const placed = placeWorkload(spec, snapshot, policy, { migrating: { cpu: workload.cpu ?? dead!.capacity.cpu, from: deadHost }, exclude: deadHost });
  if (!placed.ok) {
    const summary = Object.entries(placed.refused)
      .map(([code, n]) => `${n}× ${code}`)
      .join(', ');
    return { ok: false, unrecoverable: false, reason: `no host can take it now: ${summary}` };
  }
  return { ok: true, to: placed.decision.hostId, reason: placed.decision.reason };
}
