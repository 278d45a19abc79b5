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
