import type { HostRecord, WorkloadRecord } from '@ferry/protocol';

/** Everything a decision looks at: plain data, no I/O. */
export interface ClusterSnapshot {
  hosts: HostRecord[];
  workloads: WorkloadRecord[];
}

export const MiB = 1024 * 1024;

/** Workloads that hold resources on their host (everything but failed placements). */
export function workloadsOnHost(snapshot: ClusterSnapshot, hostId: string): WorkloadRecord[] {
  return snapshot.workloads.filter((w) => w.hostId === hostId && w.phase !== 'failed');
}
