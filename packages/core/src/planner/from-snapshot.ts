import { createHash } from 'node:crypto';
import type { CpuInfo, HostRecord, StoragePoolReport, WorkloadRecord, WorkloadSpec } from '@ferry/protocol';
import { versionAtLeast, MIN_CRIU_VERSION } from '../migration.ts';
import { DEFAULT_PLACEMENT_POLICY, type PlacementPolicy } from '../placement.ts';
import { MiB, inMaintenance, type ClusterSnapshot } from '../snapshot.ts';
import type { PlanCluster, PlanHost, PlanPool, PlanReservation, PlanWorkload } from './model.ts';
import { PoolShapeCache } from '../pool-shapes.ts';

export interface ModelOptions {
  policy: PlacementPolicy;
  /** workloads that must not move (recently moved, or in an operation) */
  pinned: ReadonlySet<string>;
  /** the workload a single question is about (placement, a migration's check, a restart): see ModelSubject */
  subject?: ModelSubject;
  /** several, for questions asked one after another on one model (a batch of placements); after `subject` */
  subjects?: ModelSubject[];
}

/**
 * The workload asked about, as the question sees it: a new one (no host, needs its template), or
 * an existing one leaving `from` (its own reservations do not count against it).
 */
export interface ModelSubject {
  spec: WorkloadSpec;
  /** the host it leaves; null or unknown: it is not on any host the model has */
  from: string | null;
  /** CPU features its processes may use (a cluster baseline replaces it); null: any */
  cpu: Pick<CpuInfo, 'vendor' | 'family' | 'flags'> | null;
  /** a new workload: created from its template */
  created: boolean;
  /** it moves live (CRIU on both hosts) */
  live: boolean;
}

const movable = (w: WorkloadRecord) => w.phase === 'running' || w.phase === 'stopped';
const creating = (w: WorkloadRecord) => w.phase === 'pending' || w.phase === 'creating';

/**
 * Union-find over (host, pool) pairs: which hosts provably mount one storage (probe files, as
 * sharedPoolProven reads them). Integer slots with full path compression: built per model, it was
 * a third of the API's CPU at 1,000 hosts with string keys and partial compression.
 */
function computeStorage(hosts: readonly HostRecord[]): (hostId: string, poolId: string) => string {
  const slotOf = new Map<string, number>(); // `${poolId}\0${hostId}` → slot
  const reports: StoragePoolReport[] = [];
  for (const h of hosts) {
    for (const p of h.capacity.pools) {
      slotOf.set(`${p.id}\u0000${h.id}`, reports.length);
      reports.push(p);
    }
  }
  const parent = Int32Array.from(reports, (_, i) => i);
  const find = (i: number): number => {
    let root = i;
    while (parent[root] !== root) root = parent[root]!;
    while (parent[i] !== root) {
      const next = parent[i]!;
      parent[i] = root;
      i = next;
    }
    return root;
  };
  let slot = 0;
  for (const h of hosts) {
    for (const p of h.capacity.pools) {
      const mine = slot++;
      if (!p.shared || !p.probe) continue;
      for (const seen of p.probe.sees) {
        if (seen.hostId === h.id) continue;
        const theirs = slotOf.get(`${p.id}\u0000${seen.hostId}`);
        const other = theirs === undefined ? undefined : reports[theirs]!;
        if (!other?.shared || !other.probe || other.probe.token !== seen.token) continue;
        const a = find(mine);
        const b = find(theirs!);
        if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
      }
    }
  }
  return (hostId, poolId) => {
    const k = slotOf.get(`${poolId}\u0000${hostId}`);
    return k === undefined ? `${poolId}\u0000${hostId}` : `#${find(k)}`;
  };
}

/**
 * The storage of the same host list and pool shape is computed once (PoolShapeCache): the API's
 * copy of the hosts is one array for seconds, and the scheduler's live host table keeps each
 * pool's probe while it is unchanged; each admission batch, placement batch and dry run built the
 * model — and this — again.
 */
const storageCache = new PoolShapeCache((hosts) => computeStorage(hosts));
function storageOf(snapshot: ClusterSnapshot): (hostId: string, poolId: string) => string {
  return storageCache.get(snapshot.hosts);
}

/**
 * The sets a host's model holds (CPU flags, networks, templates), made once per report's arrays:
 * ~100 CPU flags per host made a Set per host per model. Keyed by the arrays themselves — the
 * API's copy keeps them for seconds, and the scheduler's intake keeps a host's arrays while they
 * are unchanged (HostTable.onReport).
 */
const setCache = new WeakMap<readonly string[], ReadonlySet<string>>();
function setOf(items: readonly string[]): ReadonlySet<string> {
  let set = setCache.get(items);
  if (!set) setCache.set(items, (set = new Set(items)));
  return set;
}
const namesCache = new WeakMap<ReadonlyArray<{ name: string }>, ReadonlySet<string>>();
function namesOf(items: ReadonlyArray<{ name: string }>): ReadonlySet<string> {
  let set = namesCache.get(items);
  if (!set) namesCache.set(items, (set = new Set(items.map((i) => i.name))));
  return set;
}

// one literal with every field in one order (no spread): 100,000 workloads share one shape,
// which took the model of a 5,000-host, 100,000-workload cluster from ~1.2 s to a fraction
const planWorkload = (spec: WorkloadSpec, host: number, cpuNeeds: PlanWorkload['cpuNeeds'], running: boolean, template: string | null, pinnedHere: boolean): PlanWorkload => ({
  id: spec.id,
  mem: spec.resources.memoryMiB * MiB,
  cpu: spec.resources.vcpus,
  disk: spec.resources.diskMiB * MiB,
  networks: spec.networks.map((n) => n.network),
  pool: spec.pool,
  antiAffinity: spec.placement.antiAffinity,
  haPriority: spec.ha.enabled ? spec.ha.priority + 1 : 0,
  allowed: spec.placement.hosts.length > 0 ? new Set(spec.placement.hosts) : null,
  host,
  cpuNeeds,
  running,
  template,
  pinned: pinnedHere,
});
const needs = (cpu: Pick<CpuInfo, 'vendor' | 'family' | 'flags'>) => ({ vendor: cpu.vendor, family: cpu.family, flags: cpu.flags });

/** The model's workload for the one a question is about (ModelSubject); pinned: the question moves it, no plan. */
export function subjectWorkload(subject: ModelSubject, hostIndex: ReadonlyMap<string, number>, policy: PlacementPolicy): PlanWorkload {
  const required = policy.cpuBaseline ?? subject.cpu;
  const from = subject.from === null ? -1 : (hostIndex.get(subject.from) ?? -1);
  return planWorkload(subject.spec, from, required ? needs(required) : null, subject.live, subject.created ? subject.spec.template : null, true);
}

/**
 * The planners' model of a cluster snapshot, the one view every feasibility check reads
 * (feasibility.ts). Hosts that are not up or are in maintenance take nothing. Disk is per pool:
 * a host's local pool is its own; hosts that provably share a pool mount one storage, counted
 * once and never as any host's disk. A pool's use starts from what its host reports (total −
 * free) plus the root filesystems of workloads still being created; what a migration on its way
 * in holds (memory, vCPUs, anti-affinity) is reserved on its destination.
 */
export function modelFromSnapshot(snapshot: ClusterSnapshot, options: Partial<ModelOptions> = {}): PlanCluster {
  const policy = options.policy ?? DEFAULT_PLACEMENT_POLICY;
  const pinned = options.pinned ?? new Set<string>();
  const subjects = [...(options.subject ? [options.subject] : []), ...(options.subjects ?? [])];
  const asked = new Set(subjects.map((s) => s.spec.id));
  const others = (w: WorkloadRecord) => !asked.has(w.spec.id);
  const storage = storageOf(snapshot);
  const pools: PlanPool[] = [];
  const slotOf = new Map<string, number>();
  const sortedHosts = [...snapshot.hosts].sort((a, b) => a.id.localeCompare(b.id));
  // root filesystems promised but not written yet: on the host's own pool, or anywhere in a shared one
  const promised = new Map<string, number>();
  for (const w of snapshot.workloads) {
    if (!others(w) || !creating(w)) continue;
    for (const k of [`${w.spec.pool}\u0000`, `${w.spec.pool}\u0000${w.hostId}`]) promised.set(k, (promised.get(k) ?? 0) + w.spec.resources.diskMiB * MiB);
  }
  const pendingDisk = (hostId: string, pool: StoragePoolReport) => promised.get(`${pool.id}\u0000${pool.shared ? '' : hostId}`) ?? 0;
  const hosts: PlanHost[] = sortedHosts.map((h) => {
    const maintenance = inMaintenance(snapshot, h.id);
    const c = h.capacity;
    const hostPools = new Map<string, number>();
    for (const p of c.pools) {
      const id = storage(h.id, p.id);
      const used = p.totalBytes - p.freeBytes + pendingDisk(h.id, p);
      let slot = slotOf.get(id);
      if (slot === undefined) {
        slot = pools.push({ id: p.id, shared: false, total: p.totalBytes, other: used }) - 1;
        slotOf.set(id, slot);
      } else {
        // one storage seen by several hosts: the least room any of them reports
        const pool = pools[slot]!;
        pool.shared = true;
        if (p.totalBytes - used < pool.total - pool.other) Object.assign(pool, { total: p.totalBytes, other: used });
      }
      hostPools.set(p.id, slot);
    }
    return {
      id: h.id,
      state: h.state,
      accepting: h.state === 'up' && !maintenance,
      draining: maintenance,
      memTotal: c.memory.totalBytes * policy.memoryOvercommit,
      cpuTotal: c.cpu.count * policy.cpuOvercommit,
      diskTotal: 0,
      cpuVendor: c.cpu.vendor,
      cpuFamily: c.cpu.family,
      cpuFlags: setOf(c.cpu.flags),
      networks: namesOf(c.networks),
      templates: namesOf(c.templates),
      pools: hostPools,
      live: c.criu !== null && c.criu.usable && versionAtLeast(c.criu.version, MIN_CRIU_VERSION),
    };
  });
  for (const h of hosts) h.diskTotal = [...h.pools.values()].reduce((sum, slot) => sum + (pools[slot]!.shared ? 0 : pools[slot]!.total), 0);
  const hostIndex = new Map(hosts.map((h, i) => [h.id, i]));
  const recordOf = new Map(snapshot.hosts.map((h) => [h.id, h]));
  const workloads: PlanWorkload[] = [];
  const reservations: PlanReservation[] = [];
  const reserve = (w: WorkloadRecord, host: number | undefined) => {
    if (host !== undefined) reservations.push({ host, mem: w.spec.resources.memoryMiB * MiB, cpu: w.spec.resources.vcpus, antiAffinity: w.spec.placement.antiAffinity });
  };
  for (const w of [...snapshot.workloads].sort((a, b) => a.spec.id.localeCompare(b.spec.id))) {
    if (!others(w)) continue;
    // a migration on its way in holds its memory, vCPUs and anti-affinity on the destination too
    if (w.migratingTo !== null && w.migratingTo !== w.hostId) reserve(w, hostIndex.get(w.migratingTo));
    const host = w.hostId === null ? undefined : hostIndex.get(w.hostId);
    if (host === undefined || w.phase === 'failed') continue;
    if (w.phase === 'pending') {
      reserve(w, host);
      continue;
    }
    const hostRecord = recordOf.get(w.hostId!)!;
    // nothing moves live off a host that is not answering (a down host's HA workloads are failover's)
    const pinnedHere = pinned.has(w.spec.id) || !movable(w) || w.migratingTo !== null || hostRecord.state !== 'up';
    workloads.push(planWorkload(w.spec, host, needs(policy.cpuBaseline ?? w.cpu ?? hostRecord.capacity.cpu), w.phase === 'running', null, pinnedHere));
  }
  for (const subject of subjects) workloads.push(subjectWorkload(subject, hostIndex, policy));
  // what the pools hold beyond the model's workloads: their declared root filesystems come off
  for (const w of workloads) {
    const slot = w.host >= 0 ? hosts[w.host]!.pools.get(w.pool) : undefined;
    if (slot !== undefined) pools[slot]!.other -= w.disk;
  }
  return { hosts, workloads, pools, reservations };
}

/**
 * What a plan depends on, as a digest: where every workload is (and its epoch and whether it
 * runs), and which hosts take workloads. A plan computed at one revision is refused at another.
 */
export function clusterRevision(snapshot: ClusterSnapshot): string {
  const hash = createHash('sha256');
  for (const w of [...snapshot.workloads].sort((a, b) => a.spec.id.localeCompare(b.spec.id))) {
    hash.update(`${w.spec.id}|${w.hostId}|${w.epoch}|${movable(w) ? w.phase : 'busy'}\n`);
  }
  for (const h of [...snapshot.hosts].sort((a, b) => a.id.localeCompare(b.id))) {
    hash.update(`${h.id}|${h.state}|${inMaintenance(snapshot, h.id)}\n`);
  }
  return hash.digest('hex').slice(0, 16);
}
