import type { CpuInfo, WorkloadRecord, WorkloadSpec } from '@ferry/protocol';
import { DEFAULT_PLACEMENT_POLICY, Placer, type PlacementPolicy } from './placement.ts';
import { PoolProofs, type ClusterSnapshot } from './snapshot.ts';

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
  return restartTargets([workload], deadHost, snapshot, policy)[0]!;
}

/**
 * restartTarget for several workloads of one dead host at once, in the order given (highest
 * priority first: haWorkloadsOf): each decision sees the room the ones before it take, as one
 * after another on updated snapshots would — but the model of the cluster and the pool proofs are
 * built once, not per workload (a failover of 100 workloads among 1,000 hosts spent ~45 ms per
 * decision, one after another, on rebuilding them).
 */
export function restartTargets(workloads: readonly WorkloadRecord[], deadHost: string, snapshot: ClusterSnapshot, policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY): RestartDecision[] {
  const dead = snapshot.hosts.find((h) => h.id === deadHost);
  const proofs = PoolProofs.of(snapshot);
  const sharersOf = new Map<string, string[]>();
  const decisions: Array<RestartDecision | null> = [];
  const specs: WorkloadSpec[] = [];
  const cpus: CpuInfo[] = [];
  const placed: number[] = []; // decisions index → specs index
  for (const workload of workloads) {
    const poolId = workload.spec.pool;
    const pool = dead?.capacity.pools.find((p) => p.id === poolId);
    if (!pool?.shared) {
      decisions.push({ ok: false, unrecoverable: true, reason: `its root filesystem is on ${pool ? 'local' : 'an unknown'} pool ${poolId} of ${deadHost}, which died with the host` });
      continue;
    }
    let sharers = sharersOf.get(poolId);
    if (!sharers) sharersOf.set(poolId, (sharers = snapshot.hosts.filter((h) => h.id !== deadHost && proofs.proven(poolId, deadHost, h.id)).map((h) => h.id)));
    if (sharers.length === 0) {
      decisions.push({ ok: false, unrecoverable: true, reason: `no live host is proven to share pool ${poolId} with ${deadHost}` });
      continue;
    }
    const allowed = workload.spec.placement.hosts.length > 0 ? sharers.filter((h) => workload.spec.placement.hosts.includes(h)) : sharers;
    placed[decisions.length] = specs.length;
    decisions.push(null);
    specs.push({ ...workload.spec, placement: { ...workload.spec.placement, hosts: allowed.length > 0 ? allowed : ['(none)'] } });
    cpus.push(workload.cpu ?? dead!.capacity.cpu);
  }
  if (specs.length === 0) return decisions as RestartDecision[];
  const placer = new Placer(snapshot, policy, specs, { migrating: { cpu: dead!.capacity.cpu, from: deadHost }, cpus, exclude: deadHost });
  return decisions.map((decided, i) => {
    if (decided) return decided;
    const result = placer.place(placed[i]!);
    if (!result.ok) {
      const summary = Object.entries(result.refused)
        .map(([code, n]) => `${n}× ${code}`)
        .join(', ');
      return { ok: false, unrecoverable: false, reason: `no host can take it now: ${summary}` };
    }
    return { ok: true, to: result.decision.hostId, reason: result.decision.reason };
  });
}
