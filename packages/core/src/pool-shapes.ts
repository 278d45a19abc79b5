import type { CapacityReport, HostRecord } from '@ferry/protocol';

/**
 * What a host list's storage pools derive to (which pools are one shared pool, the proofs behind
 * it), worked out once per *shape*, not per list: the scheduler's live host table gives a new list
 * for every batch of placements, with new records every second (each report), but the pools'
 * probes — the only part these depend on — stay the same objects while unchanged
 * (keepUnchanged in the scheduler's intake). At 1,000 hosts the pool proofs and the shared-storage
 * grouping were worked out again for every batch: 12 % of the scheduler's CPU while creating.
 *
 * A list seen before answers from a WeakMap; another list with the same hosts, in the same order,
 * with the same pools (ids, shared flags and the very same probe objects) answers what the last
 * one did; anything else is worked out again.
 */
export class PoolShapeCache<T> {
  private readonly byList = new WeakMap<readonly HostRecord[], T>();
  private last: { hosts: readonly HostRecord[]; value: T } | null = null;

  constructor(private readonly compute: (hosts: readonly HostRecord[]) => T) {}

  get(hosts: readonly HostRecord[]): T {
    const known = this.byList.get(hosts);
    if (known !== undefined) return known;
    const value = this.last && samePoolShapes(this.last.hosts, hosts) ? this.last.value : this.compute(hosts);
    this.byList.set(hosts, value);
    this.last = { hosts, value };
    return value;
  }
}

/** The same hosts in the same order, each with the same pools: ids, shared flags and probe objects. */
export function samePoolShapes(a: readonly HostRecord[], b: readonly HostRecord[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (x.id !== y.id) return false;
    const p = x.capacity.pools;
    const q = y.capacity.pools;
    if (p === q) continue;
    if (p.length !== q.length) return false;
    for (let k = 0; k < p.length; k++) if (p[k]!.id !== q[k]!.id || p[k]!.shared !== q[k]!.shared || p[k]!.probe !== q[k]!.probe) return false;
  }
  return true;
}

const sameFlags = (a: readonly string[], b: readonly string[]) => a === b || (a.length === b.length && a.every((flag, i) => flag === b[i]));
// the intake hands on the previous report's own objects for fields that did not change (validateReport)
const sameJson = (a: unknown, b: unknown) => a === b || JSON.stringify(a) === JSON.stringify(b);

/**
 * `next` with the previous report's CPU flags, networks, templates and pool probes where they did
 * not change (almost always): the models built from the host table cache what they derive from
 * those by the objects themselves (planner/from-snapshot.ts, PoolShapeCache above), so unchanged ones
 * are worked out once, not with every report.
 */
export function keepUnchanged(previous: CapacityReport, next: CapacityReport): CapacityReport {
  const flags = sameFlags(previous.cpu.flags, next.cpu.flags) ? previous.cpu.flags : next.cpu.flags;
  return {
    ...next,
    cpu: flags === next.cpu.flags ? next.cpu : { ...next.cpu, flags },
    networks: sameJson(previous.networks, next.networks) ? previous.networks : next.networks,
    templates: sameJson(previous.templates, next.templates) ? previous.templates : next.templates,
    pools:
      next.pools === previous.pools
        ? previous.pools
        : next.pools.map((pool) => {
            const before = previous.pools.find((p) => p.id === pool.id)?.probe;
            return pool.probe && before && before !== pool.probe && sameJson(before, pool.probe) ? { ...pool, probe: before } : pool;
          }),
  };
}
