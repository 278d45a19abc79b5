import { Placer, keepUnchanged, type ClusterSnapshot, type PlacementPolicy, type PlacementResult, type ValidationCluster } from '@ferry/core';
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
  /** each host as last read (kept across forgetHosts: its arrays are what the next read keeps) */
  private readonly lastRead = new Map<string, HostRecord>();
  private generation = 0;

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

  /** The cluster for a create's checks (validation, warnings): the hosts, and lookups of the workloads. */
  forValidation(): Promise<ValidationCluster> {
    return this.copy.forValidation();
  }

  /** Counts the host copy's replacements: a model built from an older copy is out of date. */
  get hostsGeneration(): number {
    return this.generation;
  }

  /** The next snapshot reads the hosts again (a host changed state). */
  forgetHosts(): void {
    this.generation++;
    this.hosts = null;
    this.loadingHosts = null; // a read already under way may predate the change
  }

  private async hostsWith(fresh: readonly string[]): Promise<HostRecord[]> {
    const [cached, now] = await Promise.all([this.recentHosts(), this.store.hosts.getMany([...fresh])]);
    const current = new Map(this.keptFromBefore(now.filter((h): h is HostRecord => h !== null)).map((h) => [h.id, h] as const));
    if (current.size === 0) return cached;
    return cached.map((h) => current.get(h.id) ?? h).concat([...current.values()].filter((h) => !cached.some((c) => c.id === h.id)));
  }

  /**
   * Records read again, with the arrays and pool probes of the last read where they did not change
   * (keepUnchanged): the models built from them cache the pool proofs, the shared-storage grouping
   * and the hosts' flag sets by those objects, so each read would otherwise work them out again —
   * at 1,000 hosts the grouping alone was a tenth of the API's CPU while creating.
   */
  private keptFromBefore(records: HostRecord[]): HostRecord[] {
    return records.map((h) => {
      const previous = this.lastRead.get(h.id);
      const kept = previous ? { ...h, capacity: keepUnchanged(previous.capacity, h.capacity) } : h;
      this.lastRead.set(h.id, kept);
      return kept;
    });
  }

  private recentHosts(): Promise<HostRecord[]> {
    if (this.hosts && Date.now() - this.hosts.at < HOSTS_MAX_AGE_MS) return Promise.resolve(this.hosts.records);
    if (this.loadingHosts) return this.loadingHosts;
    const loading: Promise<HostRecord[]> = this.store.hosts.all().then((read) => {
      const records = this.keptFromBefore(read);
      const present = new Set(records.map((h) => h.id));
      for (const id of this.lastRead.keys()) if (!present.has(id)) this.lastRead.delete(id); // removed hosts
      if (this.loadingHosts === loading) {
        [this.hosts, this.loadingHosts] = [{ at: Date.now(), records }, null];
        this.generation++;
      }
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
 * How long one model of the cluster serves HA admission's successive batches of creates. Within
 * it, each create sees the room the ones admitted before it took (on the kept model), but not the
 * cluster's other changes (a deleted or stopped workload, a host's new report): admission may be
 * stricter than it need be for at most this long, and the scheduler checks every placement
 * against the cluster as it is then anyway. A host changing state ends it at once.
 */
const ADMISSION_MODEL_MAX_AGE_MS = 1_000;

/**
 * HA admission for creates, decided together: the creates that arrive while one batch is being
 * decided wait for the next, and a batch is decided on one Placer — each create sees the room the
 * ones before it would take (one at a time, every create was admitted against a cluster without
 * the others). The Placer, with its model of the whole cluster, is kept for the next batches for
 * up to ADMISSION_MODEL_MAX_AGE_MS: building it is O(hosts + workloads) — ~25 ms at 1,000 hosts
 * and 20,000 workloads (bench/placement-cost.ts) — and a batch of creates arrives every few ms.
 */
export class AdmissionBatches {
  private kept: { placer: Placer; at: number; hostsGeneration: number } | null = null;
  private readonly batches = new Batcher<WorkloadSpec, PlacementResult>(async (specs) => {
    const placer = await this.placerFor(specs);
    const first = placer.size - specs.length;
    return specs.map((_, k) => Promise.resolve(placer.place(first + k)));
  });

  constructor(
    private readonly view: ClusterView,
    private readonly policy: PlacementPolicy,
  ) {}

  check(spec: WorkloadSpec): Promise<PlacementResult> {
    return this.batches.submit(spec);
  }

  /** The kept placer with these specs added, or a new one over a new snapshot. */
  private async placerFor(specs: WorkloadSpec[]): Promise<Placer> {
    const { kept } = this;
    if (kept && Date.now() - kept.at < ADMISSION_MODEL_MAX_AGE_MS && kept.hostsGeneration === this.view.hostsGeneration) {
      kept.placer.add(specs);
      return kept.placer;
    }
    const hostsGeneration = this.view.hostsGeneration;
    const placer = new Placer(await this.view.snapshot(), this.policy, specs);
    this.kept = { placer, at: Date.now(), hostsGeneration };
    return placer;
  }
}
