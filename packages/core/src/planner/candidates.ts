import { cpuFamilyMatches, cpuFlagsPresent, cpuVendorMatches, networksAttached, storagePoolPresent, templateAvailable } from '../feasibility.ts';
import type { PlanCluster, PlanHost, Usage } from './model.ts';
import type { ClusterScore } from './score.ts';

/** What the static feasibility checks look at on a destination: hosts alike in this are one class. */
const hostClass = (h: PlanHost) =>
  [h.cpuVendor, h.cpuFamily, [...h.cpuFlags].sort().join(','), [...h.networks].sort().join(','), [...h.pools.keys()].sort().join(','), [...h.templates].sort().join(',')].join('|');

/** What they look at on a workload. */
const needsOf = (c: PlanCluster, i: number) => {
  const w = c.workloads[i]!;
  return [w.pool, w.networks.join(','), w.template ?? '', w.cpuNeeds ? `${w.cpuNeeds.vendor}/${w.cpuNeeds.family}/${w.cpuNeeds.flags.join(',')}` : ''].join('|');
};

/** The static checks of feasibility.ts (the room checks, anti-affinity, the allowed list and CRIU are left to firstRefusal per move). */
const STATIC = [templateAvailable, storagePoolPresent, networksAttached, cpuVendorMatches, cpuFamilyMatches, cpuFlagsPresent];

/**
 * Where the rebalance search looks for destinations, indexed so that a step at 10,000 hosts does
 * not score every host.
 *
 * Adding x to host b changes the variance of a resource's utilisation by about
 * (2 (u_b − mean) + x / T_b) · x / T_b over n: the best destination is not simply the emptiest host
 * but the one where an average workload lowers the spread most, which also weighs the host's
 * size. Each resource with a weight keeps its hosts sorted by that key for the cluster's average
 * workload, and one more list sorts them by the weighted sum over resources (the direction of the
 * score's gradient). The search scores every workload of a source against the first `k` hosts of
 * every list; the last `k` of each are the most loaded (the polish's sources).
 *
 * Hosts are indexed by class (alike in CPU, networks, pools and templates), and a workload is
 * offered only the classes the static checks of feasibility.ts let it go to: otherwise a few
 * empty hosts with an older CPU fill every list and no workload can go there.
 *
 * Only the two hosts of a move change, so a move re-sorts two entries per list (a binary search
 * and a memmove); the mean and spread the keys are computed with are refreshed now and then.
 */
export class DestinationIndex {
  /** per class, per direction: the class's accepting hosts sorted by key */
  private readonly lists: Int32Array[][];
  /** per direction: each host's key as last sorted */
  private readonly keys: Float64Array[];
  /** per direction: the resource weights of its key, per spread term */
  private readonly directions: Float64Array[];
  private readonly mean = new Float64Array(4);
  private readonly sd = new Float64Array(4);
  /** the average workload's amount per spread term */
  private readonly typical = new Float64Array(4);
  private readonly classOf: Int32Array;
  /** per workload: its needs' id; per needs: the classes it may go to */
  private readonly needsOf: Int32Array;
  private readonly reachable: number[][];
  private readonly cache: Array<{ step: number; k: number; hosts: number[] }> = [];
  private readonly mark: Int32Array;
  private markRound = 0;
  private version = 0;

  constructor(
    private readonly cluster: PlanCluster,
    usage: Usage,
    private readonly score: ClusterScore,
  ) {
    const classes = new Map<string, number>();
    const members: number[][] = [];
    this.classOf = Int32Array.from(cluster.hosts, (h, i) => {
      if (!h.accepting) return -1; // a destination takes workloads: up, not draining
      const key = hostClass(h);
      let c = classes.get(key);
      if (c === undefined) {
        classes.set(key, (c = classes.size));
        members.push([]);
      }
      members[c]!.push(i);
      return c;
    });
    const needs = new Map<string, number>();
    this.reachable = [];
    this.needsOf = Int32Array.from(cluster.workloads, (_w, i) => {
      const key = needsOf(cluster, i);
      let n = needs.get(key);
      if (n === undefined) {
        needs.set(key, (n = needs.size));
        this.reachable.push(members.flatMap((hosts, c) => (STATIC.every((check) => check(cluster, usage, i, hosts[0]!) === null) ? [c] : [])));
      }
      return n;
    });
    this.mark = new Int32Array(cluster.hosts.length);
    const terms = score.spreadTerms;
    const placed = cluster.workloads.map((w, i) => [w, i] as const).filter(([w]) => w.host >= 0);
    for (let r = 0; r < terms; r++) this.typical[r] = placed.reduce((s, [w, i]) => s + score.amount(r, i, w.host), 0) / Math.max(1, placed.length);
    this.directions = [];
    for (let r = 0; r < terms; r++) {
      if (score.weightOfTerm(r) <= 0) continue;
      const d = new Float64Array(4);
      d[r] = 1;
      this.directions.push(d);
    }
    this.directions.push(new Float64Array(4)); // the gradient's direction, set by refresh()
    this.lists = members.map((hosts) => this.directions.map(() => Int32Array.from(hosts)));
    this.keys = this.directions.map(() => new Float64Array(cluster.hosts.length));
    this.refresh();
  }

  private key(d: number, host: number): number {
    const dir = this.directions[d]!;
    let k = 0;
    for (let r = 0; r < this.score.spreadTerms; r++) {
      if (dir[r] === 0) continue;
      const step = this.typical[r]! * this.score.inverseCapacity(r, host);
      k += dir[r]! * (2 * (this.score.util(r, host) - this.mean[r]!) + step) * step;
    }
    return k;
  }

  /** Recomputes every key at the current mean and spread, and sorts. O(hosts log hosts). */
  refresh(): void {
    const gradient = this.directions[this.directions.length - 1]!;
    for (let r = 0; r < this.score.spreadTerms; r++) {
      const { mean, sd } = this.score.stats(r);
      this.mean[r] = mean;
      this.sd[r] = sd;
      // d(w·sd)/dV = w / (2 sd): a resource already even counts for little, but never for nothing
      gradient[r] = this.score.weightOfTerm(r) / (2 * Math.max(sd, 1e-6));
    }
    this.version++;
    for (const perClass of this.lists) {
      perClass.forEach((list, d) => {
        const keys = this.keys[d]!;
        for (const h of list) keys[h] = this.key(d, h);
        list.sort((a, b) => keys[a]! - keys[b]! || a - b);
      });
    }
  }

  /**
   * Refreshes when the keys no longer order the hosts as the score would: near a balance every
   * host is close to the mean, so a mean that drifted by a tenth of the spread reorders them
   * (moves between hosts of different sizes shift the mean), and the gradient turns as the
   * spreads shrink.
   */
  refreshIfDrifted(): void {
    for (let r = 0; r < this.score.spreadTerms; r++) {
      const { mean, sd } = this.score.stats(r);
      if (Math.abs(mean - this.mean[r]!) > 0.1 * sd || sd < 0.8 * this.sd[r]! || sd > 1.25 * this.sd[r]!) {
        this.refresh();
        return;
      }
    }
  }

  /** Position of `host` in `list` by key (binary search on key, then host index), among its first `length`. */
  private find(list: Int32Array, keys: Float64Array, host: number, key: number, length: number): number {
    let lo = 0;
    let hi = length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = list[mid]!;
      if (keys[m]! < key || (keys[m] === key && m < host)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Re-sorts `host` after its usage changed (a move to or from it). */
  update(host: number): void {
    const c = this.classOf[host]!;
    if (c < 0) return;
    this.version++;
    this.lists[c]!.forEach((list, d) => {
      const keys = this.keys[d]!;
      const at = this.find(list, keys, host, keys[host]!, list.length);
      list.copyWithin(at, at + 1);
      keys[host] = this.key(d, host);
      // the list without the host: one shorter
      const to = this.find(list, keys, host, keys[host]!, list.length - 1);
      list.copyWithin(to + 1, to, list.length - 1);
      list[to] = host;
    });
  }

  private collect(classes: Iterable<number>, k: number, fromEnd: boolean, gradientOnly = false): number[] {
    const round = ++this.markRound;
    const out: number[] = [];
    for (const c of classes) {
      for (const list of gradientOnly ? this.lists[c]!.slice(-1) : this.lists[c]!) {
        const take = Math.min(k, list.length);
        for (let j = 0; j < take; j++) {
          const h = list[fromEnd ? list.length - 1 - j : j]!;
          if (this.mark[h] === round) continue;
          this.mark[h] = round;
          out.push(h);
        }
      }
    }
    return out;
  }

  /** The best `k` destinations of every list of every class workload `index` may go to, without repeats. */
  destinations(index: number, k: number): number[] {
    const n = this.needsOf[index]!;
    const cached = this.cache[n];
    if (cached && cached.step === this.version && cached.k === k) return cached.hosts;
    const hosts = this.collect(this.reachable[n]!, k, false);
    this.cache[n] = { step: this.version, k, hosts };
    return hosts;
  }

  /** The `k` least loaded hosts of every class, by the gradient's list (the score's own direction). */
  leastLoaded(k: number): number[] {
    return this.collect(this.lists.keys(), k, false, true);
  }

  /** The `k` most loaded hosts of every class, by the gradient's list (accepting ones; draining hosts are sources anyway). */
  mostLoaded(k: number): number[] {
    return this.collect(this.lists.keys(), k, true, true);
  }
}
