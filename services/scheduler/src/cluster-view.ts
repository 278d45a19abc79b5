import type { ClusterSnapshot } from '@ferry/core';
import { WorkloadRecord, type HostRecord } from '@ferry/protocol';
import { RecordCache, type ClusterStore } from '@ferry/store';

/**
 * The cluster as this scheduler's decisions see it (placement, failover, migration checks,
 * plans, liveness): the hosts from its own capacity intake (every replica hears every report, so
 * it is fresher than Redis and costs nothing to read), every workload from a copy that follows
 * the workloads hash's change log (only what changed since the last read is read), maintenance
 * from Redis (a handful of records). Installed as the store's snapshot source in scheduler.ts.
 */
export class SchedulerClusterView {
  private readonly workloads: RecordCache<typeof WorkloadRecord>;

  constructor(
    private readonly store: ClusterStore,
    private readonly hosts: () => HostRecord[],
  ) {
    this.workloads = new RecordCache(store.workloads);
  }

  async snapshot(): Promise<ClusterSnapshot> {
    const [workloads, maintenance] = await Promise.all([this.workloads.refresh(), this.store.maintenance.all()]);
    return { hosts: this.hosts(), workloads: [...workloads.values()], maintenance };
  }
}
