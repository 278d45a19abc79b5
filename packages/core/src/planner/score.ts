import { localDisk, type PlanCluster, type Usage } from './model.ts';

export interface ScoreWeights {
  mem: number;
  cpu: number;
  disk: number;
  /** per unit of utilisation above 100 % */
  overcommit: number;
  /** per workload sharing a host with another of its anti-affinity group */
  antiAffinity: number;
  /** per workload on a host that must be emptied */
  draining: number;
}

export const DEFAULT_WEIGHTS: ScoreWeights = { mem: 1, cpu: 0.5, disk: 0.25, overcommit: 10, antiAffinity: 5, draining: 20 };

type Resource = 'mem' | 'cpu' | 'disk';
const RESOURCES: Resource[] = ['mem', 'cpu', 'disk'];
const total = (cluster: PlanCluster, host: number, r: Resource) => {
  const h = cluster.hosts[host]!;
  return r === 'mem' ? h.memTotal : r === 'cpu' ? h.cpuTotal : h.diskTotal;
};

/**
 * Ganeti hbal's idea: the weighted standard deviations of memory, CPU and disk utilisation over
 * the hosts that take workloads, plus penalties for what must not be (over capacity, anti-affinity
 * broken, workloads on draining hosts). Lower is better; 0 is perfectly even and clean.
 * Kept as running sums, so the effect of one move is computed in O(groups of the workload).
 */
export class ClusterScore {
  private readonly n: number;
  private readonly s1: Record<Resource, number> = { mem: 0, cpu: 0, disk: 0 };
  private readonly s2: Record<Resource, number> = { mem: 0, cpu: 0, disk: 0 };
  private overcommit = 0;
  private clashes = 0;
  private drainingResidents = 0;

  constructor(
    private readonly cluster: PlanCluster,
    private readonly usage: Usage,
    private readonly weights: ScoreWeights = DEFAULT_WEIGHTS,
  ) {
    this.n = cluster.hosts.filter((h) => h.accepting).length;
    cluster.hosts.forEach((h, i) => {
      if (h.draining) this.drainingResidents += usage.residents[i]!.size;
      if (!h.accepting) return;
      for (const r of RESOURCES) {
        const u = this.util(i, r, 0);
        this.s1[r] += u;
        this.s2[r] += u * u;
        this.overcommit += Math.max(0, u - 1);
      }
    });
    for (const perHost of usage.groups.values()) for (const count of perHost.values()) this.clashes += Math.max(0, count - 1);
  }

  private util(host: number, r: Resource, extra: number): number {
    const t = total(this.cluster, host, r);
    return t > 0 ? (this.usage[r][host]! + extra) / t : 0;
  }

  private valueOf(s1: Record<Resource, number>, s2: Record<Resource, number>, overcommit: number, clashes: number, draining: number): number {
    let score = 0;
    if (this.n > 0) {
      for (const r of RESOURCES) {
        const mean = s1[r] / this.n;
        score += this.weights[r] * Math.sqrt(Math.max(0, s2[r] / this.n - mean * mean));
      }
    }
    return score + this.weights.overcommit * overcommit + this.weights.antiAffinity * clashes + this.weights.draining * draining;
  }

  value(): number {
    return this.valueOf(this.s1, this.s2, this.overcommit, this.clashes, this.drainingResidents);
  }

  /** The score if workload `index` moved to `to` (nothing changes). Allocation-free: it runs millions of times. */
  after(index: number, to: number): number {
    const w = this.cluster.workloads[index]!;
    const from = w.host;
    const fromHost = this.cluster.hosts[from]!;
    let overcommit = this.overcommit;
    let score = 0;
    for (const r of RESOURCES) {
      let s1 = this.s1[r];
      let s2 = this.s2[r];
      // disk counts only on local pools: a shared pool is no host's disk
      const amount = r === 'disk' ? localDisk(this.cluster, index, to) : w[r];
      if (fromHost.accepting) {
        const before = this.util(from, r, 0);
        const after = this.util(from, r, -(r === 'disk' ? localDisk(this.cluster, index, from) : amount));
        s1 += after - before;
        s2 += after * after - before * before;
        overcommit += Math.max(0, after - 1) - Math.max(0, before - 1);
      }
      const before = this.util(to, r, 0);
      const after = this.util(to, r, amount);
      s1 += after - before;
      s2 += after * after - before * before;
      overcommit += Math.max(0, after - 1) - Math.max(0, before - 1);
      if (this.n > 0) {
        const mean = s1 / this.n;
        score += this.weights[r] * Math.sqrt(Math.max(0, s2 / this.n - mean * mean));
      }
    }
    let clashes = this.clashes;
    for (const g of w.antiAffinity) {
      const perHost = this.usage.groups.get(g)!;
      const atFrom = perHost.get(from) ?? 0;
      const atTo = perHost.get(to) ?? 0;
      clashes += Math.max(0, atFrom - 2) - Math.max(0, atFrom - 1) + Math.max(0, atTo) - Math.max(0, atTo - 1);
    }
    const draining = this.drainingResidents - (fromHost.draining ? 1 : 0) + (this.cluster.hosts[to]!.draining ? 1 : 0);
    return score + this.weights.overcommit * overcommit + this.weights.antiAffinity * clashes + this.weights.draining * draining;
  }

  /** Applies the move to the usage (through `move`, so a trial can undo it) and the sums. */
  apply(index: number, to: number, move: (index: number, to: number) => void = (i, t) => this.usage.move(i, t)): void {
    const w = this.cluster.workloads[index]!;
    const from = w.host;
    const fromHost = this.cluster.hosts[from]!;
    for (const r of RESOURCES) {
      if (fromHost.accepting) {
        const u = this.util(from, r, 0);
        this.s1[r] -= u;
        this.s2[r] -= u * u;
        this.overcommit -= Math.max(0, u - 1);
      }
      const v = this.util(to, r, 0);
      this.s1[r] -= v;
      this.s2[r] -= v * v;
      this.overcommit -= Math.max(0, v - 1);
    }
    for (const g of w.antiAffinity) {
      const perHost = this.usage.groups.get(g)!;
      this.clashes -= Math.max(0, (perHost.get(from) ?? 0) - 1) + Math.max(0, (perHost.get(to) ?? 0) - 1);
    }
    move(index, to);
    for (const r of RESOURCES) {
      if (fromHost.accepting) {
        const u = this.util(from, r, 0);
        this.s1[r] += u;
        this.s2[r] += u * u;
        this.overcommit += Math.max(0, u - 1);
      }
      const v = this.util(to, r, 0);
      this.s1[r] += v;
      this.s2[r] += v * v;
      this.overcommit += Math.max(0, v - 1);
    }
    for (const g of w.antiAffinity) {
      const perHost = this.usage.groups.get(g)!;
      this.clashes += Math.max(0, (perHost.get(from) ?? 0) - 1) + Math.max(0, (perHost.get(to) ?? 0) - 1);
    }
    if (fromHost.draining) this.drainingResidents--;
    if (this.cluster.hosts[to]!.draining) this.drainingResidents++;
  }

  /** Utilisation of one host, the largest of its resources (for choosing where to look). */
  load(host: number): number {
    return Math.max(this.util(host, 'mem', 0), this.util(host, 'cpu', 0), this.util(host, 'disk', 0));
  }
}
