import type { ClusterSnapshot, ValidationCluster } from '@ferry/core';
import { WorkloadRecord, type HostRecord } from '@ferry/protocol';
import type { ClusterStore } from './cluster-store.ts';
import { RecordCache } from './record-cache.ts';
import { WorkloadIndex } from './workload-index.ts';

/**
 * Where a process's copy gets its hosts: `fresh` names hosts the caller wants as they are now
 * (the source may answer them from Redis; a live host table is fresh anyway).
 */
export type HostSource = (fresh: readonly string[]) => HostRecord[] | Promise<HostRecord[]>;

/**
 * The cluster as one process's decisions see it, without reading the whole cluster from Redis per
 * decision: every workload from a copy that follows the workloads hash's change log (only what
 * changed since the last read is read, and every write completed before the call is seen), the
 * hosts from the process's own source (the scheduler's live host table; the API's copy at most a
 * second old), maintenance from Redis (a handful of records). A whole-cluster read cost ~1 s per
 * decision at 5,000 hosts (bench/RESULTS.md, "Scale, first form").
 */
export class ClusterCopy {
  /** shared with the scheduler's reconciler (one copy of every workload per process) */
  readonly workloads: RecordCache<typeof WorkloadRecord>;
  /** the create checks' lookups, kept by following the workloads' copy */
  private readonly index = new WorkloadIndex();

  constructor(
    private readonly store: ClusterStore,
    private readonly hosts: HostSource,
  ) {
    this.workloads = new RecordCache(store.workloads, this.index);
  }

  async snapshot(fresh: readonly string[] = []): Promise<ClusterSnapshot> {
    const [workloads, hosts, maintenance] = await Promise.all([this.workloads.refresh(), this.hosts(fresh), this.store.maintenance.all()]);
    return { hosts, workloads: [...workloads.values()], maintenance };
  }

  /**
   * What a create's checks read (validateWorkloadRequest): the hosts, and the workloads as lookups
   * brought up to date like the snapshot's — without a list of every workload per request.
   */
  async forValidation(fresh: readonly string[] = []): Promise<ValidationCluster> {
    const [, hosts] = await Promise.all([this.workloads.refresh(), this.hosts(fresh)]);
    return { hosts, lookups: this.index };
  }
}
