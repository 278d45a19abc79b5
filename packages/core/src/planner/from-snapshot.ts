import { createHash } from 'node:crypto';
import type { WorkloadRecord } from '@ferry/protocol';
import { versionAtLeast, MIN_CRIU_VERSION } from '../migration.ts';
import { DEFAULT_PLACEMENT_POLICY, type PlacementPolicy } from '../placement.ts';
import { MiB, inMaintenance, sharedPoolProven, type ClusterSnapshot } from '../snapshot.ts';
import type { PlanCluster, PlanHost, PlanWorkload } from './model.ts';

export interface ModelOptions {
  policy: PlacementPolicy;
  /** workloads that must not move (recently moved, or in an operation) */
  pinned: ReadonlySet<string>;
}

const movable = (w: WorkloadRecord) => w.phase === 'running' || w.phase === 'stopped';

/** The planners' model of a cluster snapshot (hosts that are not up or are in maintenance take nothing). */
export function modelFromSnapshot(snapshot: ClusterSnapshot, options: Partial<ModelOptions> = {}): PlanCluster {
  const policy = options.policy ?? DEFAULT_PLACEMENT_POLICY;
  const pinned = options.pinned ?? new Set<string>();
  const hosts: PlanHost[] = [...snapshot.hosts]
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((h) => {
      const maintenance = inMaintenance(snapshot, h.id);
      const c = h.capacity;
      return {
        id: h.id,
        accepting: h.state === 'up' && !maintenance,
        draining: maintenance,
        memTotal: c.memory.totalBytes * policy.memoryOvercommit,
        cpuTotal: c.cpu.count * policy.cpuOvercommit,
        diskTotal: Math.max(0, ...c.pools.map((p) => p.totalBytes)),
        cpuVendor: c.cpu.vendor,
        cpuFamily: c.cpu.family,
        cpuFlags: new Set(c.cpu.flags),
        networks: new Set(c.networks.map((n) => n.name)),
        // shared only where a probe proved it with at least one other host
        pools: new Map(c.pools.map((p) => [p.id, { shared: p.shared && snapshot.hosts.some((o) => o.id !== h.id && sharedPoolProven(snapshot, p.id, h.id, o.id)) }])),
        live: c.criu !== null && c.criu.usable && versionAtLeast(c.criu.version, MIN_CRIU_VERSION),
      };
    });
  const hostIndex = new Map(hosts.map((h, i) => [h.id, i]));
  const workloads: PlanWorkload[] = [];
  for (const w of [...snapshot.workloads].sort((a, b) => a.spec.id.localeCompare(b.spec.id))) {
    const host = w.hostId === null ? undefined : hostIndex.get(w.hostId);
    if (host === undefined || w.phase === 'failed' || w.phase === 'pending') continue;
    const hostRecord = snapshot.hosts.find((h) => h.id === w.hostId)!;
    const cpu = policy.cpuBaseline ?? w.cpu ?? hostRecord.capacity.cpu;
    workloads.push({
      id: w.spec.id,
      host,
      mem: w.spec.resources.memoryMiB * MiB,
      cpu: w.spec.resources.vcpus,
      disk: w.spec.resources.diskMiB * MiB,
      networks: w.spec.networks.map((n) => n.network),
      pool: w.spec.pool,
      antiAffinity: w.spec.placement.antiAffinity,
      cpuVendor: cpu.vendor,
      cpuFamily: cpu.family,
      cpuFlags: cpu.flags,
      running: w.phase === 'running',
      haPriority: w.spec.ha.enabled ? w.spec.ha.priority + 1 : 0,
      allowed: w.spec.placement.hosts.length > 0 ? new Set(w.spec.placement.hosts) : null,
      // nothing moves live off a host that is not answering (a down host's HA workloads are failover's)
      pinned: pinned.has(w.spec.id) || !movable(w) || w.migratingTo !== null || hostRecord.state !== 'up',
    });
  }
  return { hosts, workloads };
}

/**
 * What a plan depends on, as a digest: where every workload is (and its epoch and whether it
 * runs), and which hosts take workloads. A plan computed at one revision is refused at another.
 */
export function clusterRevision(snapshot: ClusterSnapshot): string {
  const hash = createHash('sha256');
  for (const w of [...snapshot.workloads].sort((a, b) => a.spec.id.localeCompare(b.spec.id))) {
    hash.update(`${w.spec.id}|${w.hostId}|${w.epoch}|${movable(w) ? w.phase : 'busy'}\n`);
  }
  for (const h of [...snapshot.hosts].sort((a, b) => a.id.localeCompare(b.id))) {
    hash.update(`${h.id}|${h.state}|${inMaintenance(snapshot, h.id)}\n`);
  }
  return hash.digest('hex').slice(0, 16);
}
