import type { PlanCluster, Usage } from './model.ts';

export interface ScoreWeights {
  /** standard deviation of memory utilisation (allocated / total) */
  mem: number;
  /** standard deviation of CPU commitment (vCPUs handed out / vCPUs the host offers) */
  cpu: number;
  /** standard deviation of local-disk utilisation (declared root filesystems / local pools) */
  disk: number;
  /**
   * standard deviation of the workload count per host, relative to the cluster's mean count
   * (Ganeti hbal's instance-count term); 0, off, by default: Ferry balances resources, not heads
   */
  instances: number;
  /** per unit of utilisation above 100 % */
  overcommit: number;
  /** per workload sharing a host with another of its anti-affinity group */
  antiAffinity: number;
  /** per workload on a host that must be emptied */
  draining: number;
}

/**
 * CPU commitment weighs like memory (Ganeti weighs every resource alike): both are what a host
 * hands out and what a failover must find again. Disk weighs less: it only costs copy time.
 */
export const DEFAULT_WEIGHTS: ScoreWeights = { mem: 1, cpu: 1, disk: 0.25, instances: 0, overcommit: 10, antiAffinity: 5, draining: 20 };

/** The named terms of a score, each already weighted: they sum to the score. */
export type ScoreComponents = Record<keyof ScoreWeights, number>;

export const COMPONENT_NAMES: ReadonlyArray<keyof ScoreWeights> = ['mem', 'cpu', 'disk', 'instances', 'overcommit', 'antiAffinity', 'draining'];

/** Resource slots of the running sums: mem, cpu, disk (those three can be overcommitted), instances. */
const MEM = 0;
const CPU = 1;
const DISK = 2;
const INSTANCES = 3;
const SPREAD: ReadonlyArray<keyof ScoreWeights> = ['mem', 'cpu', 'disk', 'instances'];

/**
 * Ganeti hbal's idea: the weighted standard deviations of memory, CPU and disk utilisation over
 * the hosts that take workloads, plus penalties for what must not be (over capacity, anti-affinity
 * broken, workloads on draining hosts). Lower is better; 0 is perfectly even and clean.
 * Kept as running sums, so the effect of one move is computed in O(groups of the workload).
 */
export class ClusterScore {
  readonly weights: ScoreWeights;
  /** accepting hosts: the population of the standard deviations */
  readonly n: number;
  /** the spread terms with a weight (the instance count is skipped at weight 0: after() runs millions of times) */
  private readonly resources: number;
  private readonly s1 = new Float64Array(4);
  private readonly s2 = new Float64Array(4);
  private overcommit = 0;
  private clashes = 0;
  private drainingResidents = 0;
  /** 1 / capacity per resource and host (0 where a host has none, or does not accept: it is no part of the spread) */
  private readonly inverse: Float64Array[];
  private readonly accepting: Uint8Array;
  private readonly draining: Uint8Array;
  /**
   * Whether workload i's root filesystem counts as host h's disk (it is on one of h's local
   * pools), as a bit table pool × host: `localDisk` without its two map lookups, which made the
   * search 10–35 % slower once disk was counted per pool.
   */
  private readonly localPool: Uint8Array;
  private readonly poolOf: Int32Array;
  private readonly hostCount: number;
  private readonly weightOf: Float64Array;
  private readonly count: Float64Array;

  constructor(
    private readonly cluster: PlanCluster,
    private readonly usage: Usage,
    weights: Partial<ScoreWeights> = DEFAULT_WEIGHTS,
  ) {
    this.weights = { ...DEFAULT_WEIGHTS, ...weights };
    const hosts = cluster.hosts;
    const h = (this.hostCount = hosts.length);
    this.accepting = Uint8Array.from(hosts, (x) => (x.accepting ? 1 : 0));
    this.draining = Uint8Array.from(hosts, (x) => (x.draining ? 1 : 0));
    this.n = this.accepting.reduce((s, a) => s + a, 0);
    this.resources = this.weights.instances > 0 ? 4 : 3;
    this.weightOf = Float64Array.from(SPREAD, (k) => this.weights[k]);
    this.count = Float64Array.from(usage.residents, (r) => r.size);
    // the instance count is relative to the mean count over the accepting hosts
    const placed = this.count.reduce((s, c, i) => s + (this.accepting[i] ? c : 0), 0);
    const perHost = this.n > 0 && placed > 0 ? placed / this.n : 1;
    const inv = (t: number, i: number) => (this.accepting[i] && t > 0 ? 1 / t : 0);
    this.inverse = [
      Float64Array.from(hosts, (x, i) => inv(x.memTotal, i)),
      Float64Array.from(hosts, (x, i) => inv(x.cpuTotal, i)),
      Float64Array.from(hosts, (x, i) => inv(x.diskTotal, i)),
      Float64Array.from(hosts, (_x, i) => inv(perHost, i)),
    ];
    const poolIds = new Map<string, number>();
    for (const x of hosts) for (const id of x.pools.keys()) if (!poolIds.has(id)) poolIds.set(id, poolIds.size);
    for (const w of cluster.workloads) if (!poolIds.has(w.pool)) poolIds.set(w.pool, poolIds.size);
    this.localPool = new Uint8Array(poolIds.size * h);
    hosts.forEach((x, i) => {
      for (const [id, slot] of x.pools) if (!cluster.pools[slot]!.shared) this.localPool[poolIds.get(id)! * h + i] = 1;
    });
    this.poolOf = Int32Array.from(cluster.workloads, (w) => poolIds.get(w.pool)!);

    for (let i = 0; i < h; i++) {
      if (this.draining[i]) this.drainingResidents += usage.residents[i]!.size;
      if (!this.accepting[i]) continue;
      for (let r = 0; r < this.resources; r++) {
        const u = this.util(r, i);
        this.s1[r]! += u;
        this.s2[r]! += u * u;
        if (r !== INSTANCES) this.overcommit += Math.max(0, u - 1);
      }
    }
    for (const perHost of usage.groups.values()) for (const count of perHost.values()) this.clashes += Math.max(0, count - 1);
  }

  private used(r: number, host: number): number {
    return r === MEM ? this.usage.mem[host]! : r === CPU ? this.usage.cpu[host]! : r === DISK ? this.usage.disk[host]! : this.count[host]!;
  }

  /** 1 / capacity of `host` in resource slot r: 0 for a host outside the spread. */
  inverseCapacity(r: number, host: number): number {
    return this.inverse[r]![host]!;
  }

  /** The spread terms with a weight, as resource slots 0 (mem), 1 (cpu), 2 (disk), 3 (instances). */
  get spreadTerms(): number {
    return this.resources;
  }

  /** Mean and standard deviation of utilisation in resource slot r over the accepting hosts. */
  stats(r: number): { mean: number; sd: number } {
    if (this.n === 0) return { mean: 0, sd: 0 };
    const mean = this.s1[r]! / this.n;
    return { mean, sd: Math.sqrt(Math.max(0, this.s2[r]! / this.n - mean * mean)) };
  }

  weightOfTerm(r: number): number {
    return this.weightOf[r]!;
  }

  /** Utilisation of `host` in resource slot r (0 for a host outside the spread). */
  util(r: number, host: number): number {
    return this.used(r, host) * this.inverse[r]![host]!;
  }

  /** What workload `index` adds to `host` in resource slot r: its root filesystem only on a local pool. */
  amount(r: number, index: number, host: number): number {
    const w = this.cluster.workloads[index]!;
    return r === MEM ? w.mem : r === CPU ? w.cpu : r === DISK ? (this.localPool[this.poolOf[index]! * this.hostCount + host] ? w.disk : 0) : 1;
  }

  private spread(r: number, s1: number, s2: number): number {
    const mean = s1 / this.n;
    return this.weightOf[r]! * Math.sqrt(Math.max(0, s2 / this.n - mean * mean));
  }

  value(): number {
    let score = 0;
    if (this.n > 0) for (let r = 0; r < this.resources; r++) score += this.spread(r, this.s1[r]!, this.s2[r]!);
    return score + this.weights.overcommit * this.overcommit + this.weights.antiAffinity * this.clashes + this.weights.draining * this.drainingResidents;
  }

  /** The score's named terms, each weighted (they sum to value()). */
  components(): ScoreComponents {
    const c: ScoreComponents = { mem: 0, cpu: 0, disk: 0, instances: 0, overcommit: 0, antiAffinity: 0, draining: 0 };
    if (this.n > 0) for (let r = 0; r < this.resources; r++) c[SPREAD[r]!] = this.spread(r, this.s1[r]!, this.s2[r]!);
    c.overcommit = this.weights.overcommit * this.overcommit;
    c.antiAffinity = this.weights.antiAffinity * this.clashes;
    c.draining = this.weights.draining * this.drainingResidents;
    return c;
  }

  /** The score if workload `index` moved to `to` (nothing changes). Allocation-free: it runs millions of times. */
  after(index: number, to: number): number {
    const w = this.cluster.workloads[index]!;
    const from = w.host;
    let overcommit = this.overcommit;
    let score = 0;
    for (let r = 0; r < this.resources; r++) {
      let s1 = this.s1[r]!;
      let s2 = this.s2[r]!;
      const invFrom = this.inverse[r]![from]!;
      if (invFrom > 0) {
        const used = this.used(r, from);
        const before = used * invFrom;
        const after = (used - this.amount(r, index, from)) * invFrom;
        s1 += after - before;
        s2 += after * after - before * before;
        if (r !== INSTANCES) overcommit += Math.max(0, after - 1) - Math.max(0, before - 1);
      }
      const invTo = this.inverse[r]![to]!;
      if (invTo > 0) {
        const used = this.used(r, to);
        const before = used * invTo;
        const after = (used + this.amount(r, index, to)) * invTo;
        s1 += after - before;
        s2 += after * after - before * before;
        if (r !== INSTANCES) overcommit += Math.max(0, after - 1) - Math.max(0, before - 1);
      }
      if (this.n > 0) score += this.spread(r, s1, s2);
    }
    let clashes = this.clashes;
    for (const g of w.antiAffinity) {
      const perHost = this.usage.groups.get(g)!;
      const atFrom = perHost.get(from) ?? 0;
      const atTo = perHost.get(to) ?? 0;
      clashes += Math.max(0, atFrom - 2) - Math.max(0, atFrom - 1) + Math.max(0, atTo) - Math.max(0, atTo - 1);
    }
    const draining = this.drainingResidents - this.draining[from]! + this.draining[to]!;
    return score + this.weights.overcommit * overcommit + this.weights.antiAffinity * clashes + this.weights.draining * draining;
  }

  /** The leaving half of a move (prepare), for scoring one workload against many destinations (afterTo). */
  private readonly leftS1 = new Float64Array(4);
  private readonly leftS2 = new Float64Array(4);
  /** per resource, what leaving changes in overcommit (added in after()'s order: bit for bit the same sum) */
  private readonly leftOvercommit = new Float64Array(4);
  private leftIndex = -1;
  private leftClashes = 0;
  private leftDraining = 0;

  /**
   * Computes what workload `index` leaving its host does to the sums, once: afterTo(to) then adds
   * only the arriving half, with the same arithmetic in the same order as after(index, to), so the
   * two agree to the bit. The search scores each workload against dozens of hosts; this halves
   * the work of each (bench/RESULTS.md, "Planner, 20 containers per host").
   */
  prepare(index: number): void {
    const w = this.cluster.workloads[index]!;
    const from = w.host;
    for (let r = 0; r < this.resources; r++) {
      let s1 = this.s1[r]!;
      let s2 = this.s2[r]!;
      let overcommit = 0;
      const invFrom = this.inverse[r]![from]!;
      if (invFrom > 0) {
        const used = this.used(r, from);
        const before = used * invFrom;
        const after = (used - this.amount(r, index, from)) * invFrom;
        s1 += after - before;
        s2 += after * after - before * before;
        if (r !== INSTANCES) overcommit = Math.max(0, after - 1) - Math.max(0, before - 1);
      }
      this.leftS1[r] = s1;
      this.leftS2[r] = s2;
      this.leftOvercommit[r] = overcommit;
    }
    let clashes = this.clashes;
    for (const g of w.antiAffinity) {
      const atFrom = this.usage.groups.get(g)!.get(from) ?? 0;
      clashes += Math.max(0, atFrom - 2) - Math.max(0, atFrom - 1);
    }
    this.leftIndex = index;
    this.leftClashes = clashes;
    this.leftDraining = this.drainingResidents - this.draining[from]!;
  }

  /** after(index, to) for the workload last prepared (nothing may have moved since), `to` not its own host. */
  afterTo(to: number): number {
    const index = this.leftIndex;
    const w = this.cluster.workloads[index]!;
    let overcommit = this.overcommit;
    let score = 0;
    for (let r = 0; r < this.resources; r++) {
      overcommit += this.leftOvercommit[r]!;
      let s1 = this.leftS1[r]!;
      let s2 = this.leftS2[r]!;
      const invTo = this.inverse[r]![to]!;
      if (invTo > 0) {
        const used = this.used(r, to);
        const before = used * invTo;
        const after = (used + this.amount(r, index, to)) * invTo;
        s1 += after - before;
        s2 += after * after - before * before;
        if (r !== INSTANCES) overcommit += Math.max(0, after - 1) - Math.max(0, before - 1);
      }
      if (this.n > 0) score += this.spread(r, s1, s2);
    }
    let clashes = this.leftClashes;
    for (const g of w.antiAffinity) {
      const atTo = this.usage.groups.get(g)!.get(to) ?? 0;
      clashes += Math.max(0, atTo) - Math.max(0, atTo - 1);
    }
    const draining = this.leftDraining + this.draining[to]!;
    return score + this.weights.overcommit * overcommit + this.weights.antiAffinity * clashes + this.weights.draining * draining;
  }

  private account(host: number, sign: number): void {
    if (!this.accepting[host]) return;
    for (let r = 0; r < this.resources; r++) {
      const u = this.util(r, host);
      this.s1[r]! += sign * u;
      this.s2[r]! += sign * u * u;
      if (r !== INSTANCES) this.overcommit += sign * Math.max(0, u - 1);
    }
  }

  private accountGroups(index: number, from: number, to: number, sign: number): void {
    for (const g of this.cluster.workloads[index]!.antiAffinity) {
      const perHost = this.usage.groups.get(g)!;
      this.clashes += sign * (Math.max(0, (perHost.get(from) ?? 0) - 1) + Math.max(0, (perHost.get(to) ?? 0) - 1));
    }
  }

  /** Applies the move to the usage (through `move`, so a trial can undo it) and the sums. */
  apply(index: number, to: number, move: (index: number, to: number) => void = (i, t) => this.usage.move(i, t)): void {
    const from = this.cluster.workloads[index]!.host;
    this.account(from, -1);
    this.account(to, -1);
    this.accountGroups(index, from, to, -1);
    move(index, to);
    this.count[from]!--;
    this.count[to]!++;
    this.account(from, 1);
    this.account(to, 1);
    this.accountGroups(index, from, to, 1);
    this.drainingResidents += this.draining[to]! - this.draining[from]!;
  }

  /** Utilisation of one host, the largest of its resources. */
  load(host: number): number {
    return Math.max(this.util(MEM, host), this.util(CPU, host), this.util(DISK, host));
  }
}
