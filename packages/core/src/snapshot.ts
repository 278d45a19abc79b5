import type { HostRecord, MaintenanceRecord, WorkloadRecord } from '@ferry/protocol';

/** Everything a decision looks at: plain data, no I/O. */
export interface ClusterSnapshot {
  hosts: HostRecord[];
  workloads: WorkloadRecord[];
  /** hosts in (or entering) planned maintenance: they take no workloads */
  maintenance?: MaintenanceRecord[];
}

export const inMaintenance = (snapshot: ClusterSnapshot, hostId: string): boolean => (snapshot.maintenance ?? []).some((m) => m.hostId === hostId);

export const MiB = 1024 * 1024;

/**
 * Workloads that hold resources on a host: those placed there (but failed placements), and those
 * migrating to it (their memory is reserved on both ends until the move ends).
 */
export function workloadsOnHost(snapshot: ClusterSnapshot, hostId: string): WorkloadRecord[] {
  return snapshot.workloads.filter((w) => (w.hostId === hostId && w.phase !== 'failed') || w.migratingTo === hostId);
}

/**
 * Whether two hosts really share a storage pool: one of them wrote a probe file into it that the
 * other reads back with the same token (OpenStack Nova's trick). The config's `shared` flag is a
 * claim; this is the proof.
 */
export function sharedPoolProven(snapshot: ClusterSnapshot, poolId: string, a: string, b: string): boolean {
  if (a === b) return true;
  const report = (hostId: string) => snapshot.hosts.find((h) => h.id === hostId)?.capacity.pools.find((p) => p.id === poolId);
  const pa = report(a);
  const pb = report(b);
  if (!pa?.shared || !pb?.shared || !pa.probe || !pb.probe) return false;
  const sees = (reader: typeof pa, writer: string, token: string) => reader.probe!.sees.some((s) => s.hostId === writer && s.token === token);
  return sees(pb, a, pa.probe.token) || sees(pa, b, pb.probe.token);
}
