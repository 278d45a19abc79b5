import { Placer, type ClusterSnapshot, type PlacementPolicy, type PlacementResult } from '@ferry/core';
import type { HostRecord, WorkloadSpec } from '@ferry/protocol';
import { Batcher } from '@ferry/runtime';
import { ClusterCopy, type ClusterStore } from '@ferry/store';

/**
 * How old the API's copy of the host records may be. They change with every report anyway, and
 * reading them all costs the API ~0.14 ms of CPU per host record (JSON and its schema, 20
 * containers each): re-read every second, 1,000 hosts kept the API ~15 % busy and 5,000 would
 * keep it ~70 % busy for that alone (bench/RESULTS.md, "Scale, with the cluster copy"). A host
 * state event still drops the copy at once, a migration reads its own two hosts fresh, and the
 * scheduler checks every placement against its live table.
 */
const HOSTS_MAX_AGE_MS = 5_000;

/**
 * The cluster as the API's checks of a new workload see it (validation, warnings, HA admission):
 * a ClusterCopy whose hosts are read at most every HOSTS_MAX_AGE_MS (each host rewrites its
 * record every second: reading them per request would read the whole cluster per request). The
 * scheduler checks again when it places, against its own live host table.
 */
export class ClusterView {
  private readonly copy: ClusterCopy;
  private hosts: { at: number; records: HostRecord[] } | null = null;
  private loadingHosts: Promise<HostRecord[]> | null = null;

  constructor(private readonly store: ClusterStore) {
    this.copy = new ClusterCopy(store, (fresh) => this.hostsWith(fresh));
  }

  /**
   * The cluster for one request's checks. `fresh`: hosts read from Redis now rather than from the
   * copy (a migration's source and chosen destination: an operator who just saw a host's new
   * state or pool size in GET /v1/hosts/:id expects the refusal to say the same).
   */
  snapshot(fresh: Array<string | null | undefined> = []): Promise<ClusterSnapshot> {
    return this.copy.snapshot([...new Set(fresh.filter((id): id is string => typeof id === 'string'))]);
  }

  /** The next snapshot reads the hosts again (a host changed state). */
  forgetHosts(): void {
    this.hosts = null;
    this.loadingHosts = null; // a read already under way may predate the change
  }

  private async hostsWith(fresh: readonly string[]): Promise<HostRecord[]> {
    const [cached, now] = await Promise.all([this.recentHosts(), this.store.hosts.getMany([...fresh])]);
    const current = new Map(now.flatMap((h) => (h ? [[h.id, h] as const] : [])));
    if (current.size === 0) return cached;
    return cached.map((h) => current.get(h.id) ?? h).concat([...current.values()].filter((h) => !cached.some((c) => c.id === h.id)));
  }

  private recentHosts(): Promise<HostRecord[]> {
    if (this.hosts && Date.now() - this.hosts.at < HOSTS_MAX_AGE_MS) return Promise.resolve(this.hosts.records);
    if (this.loadingHosts) return this.loadingHosts;
    const loading: Promise<HostRecord[]> = this.store.hosts.all().then((records) => {
      if (this.loadingHosts === loading) [this.hosts, this.loadingHosts] = [{ at: Date.now(), records }, null];
      return records;
    });
    loading.catch(() => {
      if (this.loadingHosts === loading) this.loadingHosts = null;
    });
    this.loadingHosts = loading;
    return loading;
  }
}

/**
 * HA admission for creates, decided together: the creates that arrive while one batch is being
 * decided wait for the next, and a batch is one Placer over one snapshot — each create sees the
 * room the ones before it would take (one at a time, every create was admitted against a cluster
 * without the others), and the model of the cluster is built once per batch, not per request.
 */
export class AdmissionBatches {
  private readonly batches = new Batcher<WorkloadSpec, PlacementResult>(async (specs) => {
    const placer = new Placer(await this.view.snapshot(), this.policy, specs);
    return specs.map((_, k) => Promise.resolve(placer.place(k)));
  });

  constructor(
    private readonly view: ClusterView,
    private readonly policy: PlacementPolicy,
  ) {}

  check(spec: WorkloadSpec): Promise<PlacementResult> {
    return this.batches.submit(spec);
  }
}
