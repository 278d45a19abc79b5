/**
 * The planners' compact view of a cluster: numbers and sets only, built once from a snapshot
 * (or generated for benchmarks), so that a 10,000-host plan is arithmetic, not object walking.
 */

export interface PlanHost {
  id: string;
  /** up and not in maintenance: may receive workloads */
  accepting: boolean;
  /** workloads on it must leave (maintenance, or down) */
  draining: boolean;
  memTotal: number;
  cpuTotal: number;
  diskTotal: number;
  cpuVendor: string;
  cpuFamily: number;
  cpuFlags: ReadonlySet<string>;
  networks: ReadonlySet<string>;
  /** pool id → shared (proven) or local */
  pools: ReadonlyMap<string, { shared: boolean }>;
  /** live migration possible to and from it (CRIU usable) */
  live: boolean;
}

export interface PlanWorkload {
  id: string;
  host: number;
  mem: number;
  cpu: number;
  disk: number;
  networks: readonly string[];
  pool: string;
  antiAffinity: readonly string[];
  /** CPU flags its processes may use: a destination must have all */
  cpuVendor: string;
  cpuFamily: number;
  cpuFlags: readonly string[];
  running: boolean;
  haPriority: number;
  /** hosts it may run on; empty: any */
  allowed: ReadonlySet<string> | null;
  /** the planner must not move it (cooldown, migrating) */
  pinned: boolean;
}

export interface PlanCluster {
  hosts: PlanHost[];
  workloads: PlanWorkload[];
}

/** Running usage per host, kept up to date as moves are applied. */
export class Usage {
  readonly mem: Float64Array;
  readonly cpu: Float64Array;
  readonly disk: Float64Array;
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
    this.residents = Array.from({ length: n }, () => new Set<number>());
    cluster.workloads.forEach((w, i) => this.add(i, w.host));
  }

  private add(index: number, host: number): void {
    const w = this.cluster.workloads[index]!;
    this.mem[host]! += w.mem;
    this.cpu[host]! += w.cpu;
    this.disk[host]! += w.disk;
    if (w.haPriority > 0) this.haMem[host]! += w.mem;
    this.residents[host]!.add(index);
    for (const g of w.antiAffinity) {
      let perHost = this.groups.get(g);
      if (!perHost) this.groups.set(g, (perHost = new Map()));
      perHost.set(host, (perHost.get(host) ?? 0) + 1);
    }
  }

  private remove(index: number, host: number): void {
    const w = this.cluster.workloads[index]!;
    this.mem[host]! -= w.mem;
    this.cpu[host]! -= w.cpu;
    this.disk[host]! -= w.disk;
    if (w.haPriority > 0) this.haMem[host]! -= w.mem;
    this.residents[host]!.delete(index);
    for (const g of w.antiAffinity) {
      const perHost = this.groups.get(g)!;
      const left = (perHost.get(host) ?? 1) - 1;
      if (left <= 0) perHost.delete(host);
      else perHost.set(host, left);
    }
  }

  move(index: number, to: number): void {
    const from = this.cluster.workloads[index]!.host;
    this.remove(index, from);
    this.add(index, to);
    this.cluster.workloads[index]!.host = to;
  }

  /** Another workload of one of its anti-affinity groups runs on `host`. */
  antiAffinityClash(index: number, host: number): boolean {
    for (const g of this.cluster.workloads[index]!.antiAffinity) if ((this.groups.get(g)?.get(host) ?? 0) > 0) return true;
    return false;
  }
}

/** Why a workload may not go to a host (first reason found), or null: static checks plus room. */
export function moveRefusal(cluster: PlanCluster, usage: Usage, index: number, to: number): string | null {
  const w = cluster.workloads[index]!;
  const h = cluster.hosts[to]!;
  if (w.host === to) return 'SAME_HOST';
  if (!h.accepting) return h.draining ? 'HOST_IN_MAINTENANCE' : 'HOST_DOWN';
  if (w.allowed && !w.allowed.has(h.id)) return 'NOT_ALLOWED';
  if (w.running && !(h.live && cluster.hosts[w.host]!.live)) return 'CRIU_UNSUPPORTED';
  if (h.cpuVendor !== w.cpuVendor) return 'CPU_VENDOR_MISMATCH';
  if (h.cpuFamily !== w.cpuFamily) return 'CPU_FAMILY_MISMATCH';
  for (const f of w.cpuFlags) if (!h.cpuFlags.has(f)) return 'CPU_FLAGS_MISSING';
  for (const n of w.networks) if (!h.networks.has(n)) return 'NETWORK_MISSING';
  const pool = h.pools.get(w.pool);
  if (!pool) return 'STORAGE_POOL_MISSING';
  if (usage.mem[to]! + w.mem > h.memTotal) return 'MEMORY_INSUFFICIENT';
  if (usage.cpu[to]! + w.cpu > h.cpuTotal) return 'CPU_INSUFFICIENT';
  if (usage.disk[to]! + w.disk > h.diskTotal) return 'DISK_INSUFFICIENT';
  if (usage.antiAffinityClash(index, to)) return 'ANTI_AFFINITY';
  return null;
}

/** Bytes a move puts on the link: memory, plus the root filesystem unless a proven-shared pool holds it. */
export function moveBytes(cluster: PlanCluster, index: number, to: number): number {
  const w = cluster.workloads[index]!;
  const from = cluster.hosts[w.host]!.pools.get(w.pool);
  const dest = cluster.hosts[to]!.pools.get(w.pool);
  const shared = from?.shared === true && dest?.shared === true;
  return (w.running ? w.mem : 0) + (shared ? 0 : w.disk);
}

export function cloneCluster(cluster: PlanCluster): PlanCluster {
  return { hosts: cluster.hosts, workloads: cluster.workloads.map((w) => ({ ...w })) };
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
