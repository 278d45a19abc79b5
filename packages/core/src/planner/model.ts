/**
 * The planners' compact view of a cluster: numbers and sets only, built once from a snapshot
 * (or generated for benchmarks), so that a 10,000-host plan is arithmetic, not object walking.
 */

export type PlanHostState = 'up' | 'suspect' | 'down' | 'removed';

export interface PlanHost {
  id: string;
  /** as the scheduler last saw it; only an `up` host takes workloads */
  state: PlanHostState;
  /** up and not draining: may receive workloads (kept equal to state === 'up' && !draining) */
  accepting: boolean;
  /** workloads on it must leave (maintenance, or being evacuated) */
  draining: boolean;
  memTotal: number;
  cpuTotal: number;
  /** bytes of its local pools (a shared pool's disk never counts as a host's disk) */
  diskTotal: number;
  cpuVendor: string;
  cpuFamily: number;
  cpuFlags: ReadonlySet<string>;
  networks: ReadonlySet<string>;
  /** templates it can create new workloads from */
  templates: ReadonlySet<string>;
  /** pool id → index of the storage (PlanCluster.pools) it mounts under that id */
  pools: ReadonlyMap<string, number>;
  /** live migration possible to and from it (CRIU usable) */
  live: boolean;
}

/**
 * One storage: a host's local pool, or a pool that several hosts provably share (one storage, one
 * entry, for all of them). Disk is counted here, on the workload's own pool.
 */
export interface PlanPool {
  id: string;
  /** provably mounted by more than one host: a move between them copies nothing */
  shared: boolean;
  total: number;
  /**
   * bytes held by anything but the model's workloads (other files, root filesystems of workloads
   * being created); may be negative where root filesystems use less than they declare
   */
  other: number;
}

/** CPU features the processes of a workload may use: a destination must offer all. */
export interface CpuNeeds {
  vendor: string;
  family: number;
  flags: readonly string[];
}

export interface PlanWorkload {
  id: string;
  /** index of its host; -1 for a workload not placed yet */
  host: number;
  mem: number;
  cpu: number;
  disk: number;
  networks: readonly string[];
  pool: string;
  antiAffinity: readonly string[];
  /** null: it may run on any CPU (a new workload without a cluster baseline) */
  cpuNeeds: CpuNeeds | null;
  /** moving it means a live migration (CRIU on both hosts) */
  running: boolean;
  /** a new workload is created from this template; null for one that exists (its root filesystem comes along) */
  template: string | null;
  haPriority: number;
  /** hosts it may run on; empty: any */
  allowed: ReadonlySet<string> | null;
  /** the planner must not move it (cooldown, migrating) */
  pinned: boolean;
}

/** Resources held on a host by something that is not a plannable workload there: a migration on its way in, a workload being created. */
export interface PlanReservation {
  host: number;
  mem: number;
  cpu: number;
  antiAffinity: readonly string[];
}

export interface PlanCluster {
  hosts: PlanHost[];
  workloads: PlanWorkload[];
  pools: PlanPool[];
  reservations?: PlanReservation[];
}

/** Running usage per host and per pool, kept up to date as moves are applied. */
export class Usage {
  readonly mem: Float64Array;
  readonly cpu: Float64Array;
  /**
   * declared root filesystems of the workloads on each host's local pools: what the score
   * balances (stable between two reports; the room a move needs is poolUsed's)
   */
  readonly disk: Float64Array;
  /** bytes used in each pool (PlanCluster.pools) */
  readonly poolUsed: Float64Array;
  /** memory of HA-protected workloads per host (what a failover of that host must find elsewhere) */
  readonly haMem: Float64Array;
  /** workload indexes per host */
  readonly residents: Array<Set<number>>;
  /** anti-affinity group → count per host */
  readonly groups = new Map<string, Map<number, number>>();

  constructor(readonly cluster: PlanCluster) {
    const n = cluster.hosts.length;
    this.mem = new Float64Array(n);
    this.cpu = new Float64Array(n);
    this.disk = new Float64Array(n);
    this.haMem = new Float64Array(n);
    this.poolUsed = Float64Array.from(cluster.pools.map((p) => p.other));
    this.residents = Array.from({ length: n }, () => new Set<number>());
    for (const r of cluster.reservations ?? []) {
      this.mem[r.host]! += r.mem;
      this.cpu[r.host]! += r.cpu;
      this.count(r.antiAffinity, r.host, 1);
    }
    cluster.workloads.forEach((w, i) => {
      if (w.host >= 0) this.add(i, w.host, true);
    });
  }

  private count(groups: readonly string[], host: number, delta: number): void {
    for (const g of groups) {
      let perHost = this.groups.get(g);
      if (!perHost) this.groups.set(g, (perHost = new Map()));
      const left = (perHost.get(host) ?? 0) + delta;
      if (left <= 0) perHost.delete(host);
      else perHost.set(host, left);
    }
  }

  private add(index: number, host: number, withDisk = false): void {
    const w = this.cluster.workloads[index]!;
    if (withDisk) {
      const slot = this.cluster.hosts[host]!.pools.get(w.pool);
      if (slot !== undefined) this.poolUsed[slot]! += w.disk;
      this.disk[host]! += localDisk(this.cluster, index, host);
    }
    this.mem[host]! += w.mem;
    this.cpu[host]! += w.cpu;
    if (w.haPriority > 0) this.haMem[host]! += w.mem;
    this.residents[host]!.add(index);
    this.count(w.antiAffinity, host, 1);
  }

  private remove(index: number, host: number): void {
    const w = this.cluster.workloads[index]!;
    this.mem[host]! -= w.mem;
    this.cpu[host]! -= w.cpu;
    if (w.haPriority > 0) this.haMem[host]! -= w.mem;
    this.residents[host]!.delete(index);
    this.count(w.antiAffinity, host, -1);
  }

  /** The root filesystem follows the workload unless both hosts mount the same storage. */
  private moveDisk(index: number, from: number, to: number): void {
    const w = this.cluster.workloads[index]!;
    const source = this.cluster.hosts[from]!.pools.get(w.pool);
    const dest = this.cluster.hosts[to]!.pools.get(w.pool);
    if (source === dest) return;
    if (source !== undefined) {
      this.poolUsed[source]! -= w.disk;
      if (!this.cluster.pools[source]!.shared) this.disk[from]! -= w.disk;
    }
    if (dest !== undefined) {
      this.poolUsed[dest]! += w.disk;
      if (!this.cluster.pools[dest]!.shared) this.disk[to]! += w.disk;
    }
  }

  /** A workload that is on no host yet (a new one) takes its room on `to`, root filesystem included. */
  place(index: number, to: number): void {
    this.add(index, to, true);
    this.cluster.workloads[index]!.host = to;
  }

  move(index: number, to: number): void {
    const from = this.cluster.workloads[index]!.host;
    this.remove(index, from);
    this.moveDisk(index, from, to);
    this.add(index, to);
    this.cluster.workloads[index]!.host = to;
  }

  /** Another workload (or a reservation) of one of its anti-affinity groups is on `host`. */
  antiAffinityClash(index: number, host: number): boolean {
    for (const g of this.cluster.workloads[index]!.antiAffinity) if ((this.groups.get(g)?.get(host) ?? 0) > 0) return true;
    return false;
  }
}

/** Whether a move of workload `index` to `to` keeps its root filesystem where it is (both hosts mount the same storage). */
export function sharedMove(cluster: PlanCluster, index: number, to: number, from = cluster.workloads[index]!.host): boolean {
  const w = cluster.workloads[index]!;
  if (from < 0) return false;
  const source = cluster.hosts[from]!.pools.get(w.pool);
  return source !== undefined && source === cluster.hosts[to]!.pools.get(w.pool);
}

/** Disk workload `index` takes on `host`'s own disk: its size on a local pool, nothing on a shared one. */
export function localDisk(cluster: PlanCluster, index: number, host: number): number {
  const w = cluster.workloads[index]!;
  const slot = cluster.hosts[host]!.pools.get(w.pool);
  return slot !== undefined && !cluster.pools[slot]!.shared ? w.disk : 0;
}

/** Bytes a move puts on the link: memory, plus the root filesystem unless a proven-shared pool holds it. */
export function moveBytes(cluster: PlanCluster, index: number, to: number, from = cluster.workloads[index]!.host): number {
  const w = cluster.workloads[index]!;
  return (w.running ? w.mem : 0) + (sharedMove(cluster, index, to, from) ? 0 : w.disk);
}

export function cloneCluster(cluster: PlanCluster): PlanCluster {
  return { ...cluster, workloads: cluster.workloads.map((w) => ({ ...w })) };
}

/**
 * A cluster with its usage index, built once (O(workloads)) and shared by any number of plans:
 * each planner applies its moves to it and takes them back before it returns, so a 10,000-host
 * snapshot is indexed once, not per plan.
 */
export class PlanningState {
  readonly usage: Usage;

  constructor(readonly cluster: PlanCluster) {
    this.usage = new Usage(cluster);
  }

  /** Runs `plan` and then undoes every move it made through `move`. */
  trial<T>(plan: (move: (index: number, to: number) => void) => T): T {
    const undo: Array<[number, number]> = [];
    const move = (index: number, to: number) => {
      undo.push([index, this.cluster.workloads[index]!.host]);
      this.usage.move(index, to);
    };
    try {
      return plan(move);
    } finally {
      for (let i = undo.length - 1; i >= 0; i--) this.usage.move(undo[i]![0], undo[i]![1]);
    }
  }
}

export const stateOf = (input: PlanCluster | PlanningState): PlanningState => (input instanceof PlanningState ? input : new PlanningState(input));
