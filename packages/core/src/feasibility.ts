/**
 * The one set of feasibility checks: whether a workload may go to a host, asked the same way by
 * placement (placeWorkload, hostProblems), the planners (rebalance, evacuation, their replay),
 * failover's restart target and the migration's last check (the runner's checkDestination).
 *
 * Like Nomad's FeasibilityCheckers declared in its stack.go, and Ganeti's failure modes: a closed
 * union of refusal codes, and an ordered list of small, named, pure checks, each over one cluster
 * view (the planning model, planner/model.ts, with its running usage). The cheap static checks
 * come first, the room checks last; `firstRefusal` stops at the first, `allRefusals` lists every one.
 * A check says only whether it refuses (allocation-free: the planner asks millions of times);
 * `explainRefusal` turns a code into the sentence an operator reads.
 *
 * Cluster-wide conditions are not per-host checks and stay outside: HA admission control
 * (admission.ts, creates only, code HA_ADMISSION) and the live-migration strategy
 * (chooseStrategy: which CRIU features both hosts have).
 */
import { MiB } from './snapshot.ts';
import { sharedMove, type PlanCluster, type Usage } from './planner/model.ts';

export const REFUSAL_CODES = [
  'SAME_HOST',
  'NOT_ALLOWED',
  'HOST_DOWN',
  'HOST_SUSPECT',
  'HOST_IN_MAINTENANCE',
  'TEMPLATE_MISSING',
  'STORAGE_POOL_MISSING',
  'NETWORK_MISSING',
  'CRIU_UNSUPPORTED',
  'CPU_VENDOR_MISMATCH',
  'CPU_FAMILY_MISMATCH',
  'CPU_FLAGS_MISSING',
  'MEMORY_INSUFFICIENT',
  'CPU_INSUFFICIENT',
  'DISK_INSUFFICIENT',
  'ANTI_AFFINITY',
  'HA_ADMISSION',
] as const;

/** Every reason a host can refuse a workload. HA_ADMISSION is placement's cluster-wide check (admission.ts). */
export type RefusalCode = (typeof REFUSAL_CODES)[number];

/** What a check looks at: a workload (by index) that would go to a host (by index), on one cluster view. */
export interface MoveQuery {
  cluster: PlanCluster;
  usage: Usage;
  index: number;
  to: number;
}

export interface FeasibilityCheck {
  name: string;
  /** the codes it can refuse with */
  codes: readonly RefusalCode[];
  /** null: passes */
  refuse(cluster: PlanCluster, usage: Usage, index: number, to: number): RefusalCode | null;
}

type Refuse = FeasibilityCheck['refuse'];

export const sameHost: Refuse = (c, _u, i, to) => (c.workloads[i]!.host === to ? 'SAME_HOST' : null);

export const allowedHost: Refuse = (c, _u, i, to) => {
  const allowed = c.workloads[i]!.allowed;
  return allowed && !allowed.has(c.hosts[to]!.id) ? 'NOT_ALLOWED' : null;
};

export const hostUp: Refuse = (c, _u, _i, to) => {
  const state = c.hosts[to]!.state;
  return state === 'up' ? null : state === 'suspect' ? 'HOST_SUSPECT' : 'HOST_DOWN';
};

export const hostNotDraining: Refuse = (c, _u, _i, to) => (c.hosts[to]!.draining ? 'HOST_IN_MAINTENANCE' : null);

export const templateAvailable: Refuse = (c, _u, i, to) => {
  const template = c.workloads[i]!.template;
  return template !== null && !c.hosts[to]!.templates.has(template) ? 'TEMPLATE_MISSING' : null;
};

export const storagePoolPresent: Refuse = (c, _u, i, to) => (c.hosts[to]!.pools.has(c.workloads[i]!.pool) ? null : 'STORAGE_POOL_MISSING');

export const networksAttached: Refuse = (c, _u, i, to) => {
  const networks = c.hosts[to]!.networks;
  for (const n of c.workloads[i]!.networks) if (!networks.has(n)) return 'NETWORK_MISSING';
  return null;
};

/** A running workload moves live: CRIU must work on both hosts. */
export const liveMigrationPossible: Refuse = (c, _u, i, to) => {
  const w = c.workloads[i]!;
  return w.running && !(c.hosts[to]!.live && w.host >= 0 && c.hosts[w.host]!.live) ? 'CRIU_UNSUPPORTED' : null;
};

export const cpuVendorMatches: Refuse = (c, _u, i, to) => {
  const needs = c.workloads[i]!.cpuNeeds;
  return needs && needs.vendor !== c.hosts[to]!.cpuVendor ? 'CPU_VENDOR_MISMATCH' : null;
};

/** Family is compared only between CPUs of one vendor (another vendor is refused already). */
export const cpuFamilyMatches: Refuse = (c, _u, i, to) => {
  const needs = c.workloads[i]!.cpuNeeds;
  const h = c.hosts[to]!;
  return needs && needs.vendor === h.cpuVendor && needs.family !== h.cpuFamily ? 'CPU_FAMILY_MISMATCH' : null;
};

export const cpuFlagsPresent: Refuse = (c, _u, i, to) => {
  const needs = c.workloads[i]!.cpuNeeds;
  if (!needs) return null;
  const flags = c.hosts[to]!.cpuFlags;
  for (const f of needs.flags) if (!flags.has(f)) return 'CPU_FLAGS_MISSING';
  return null;
};

/** What `host` has in use apart from the workload itself (when it is already there). */
const usedApartFrom = (c: PlanCluster, used: Float64Array, i: number, to: number, own: number) => used[to]! - (c.workloads[i]!.host === to ? own : 0);

export const memoryRoom: Refuse = (c, u, i, to) => {
  const w = c.workloads[i]!;
  return usedApartFrom(c, u.mem, i, to, w.mem) + w.mem > c.hosts[to]!.memTotal ? 'MEMORY_INSUFFICIENT' : null;
};

export const cpuRoom: Refuse = (c, u, i, to) => {
  const w = c.workloads[i]!;
  return usedApartFrom(c, u.cpu, i, to, w.cpu) + w.cpu > c.hosts[to]!.cpuTotal ? 'CPU_INSUFFICIENT' : null;
};

/**
 * Room on the workload's own pool at the destination; a move within one storage both hosts
 * mount copies nothing and needs none. (A missing pool is refused by storagePoolPresent.)
 */
export const diskRoom: Refuse = (c, u, i, to) => {
  const slot = c.hosts[to]!.pools.get(c.workloads[i]!.pool);
  if (slot === undefined || u.poolUsed[slot]! + c.workloads[i]!.disk <= c.pools[slot]!.total) return null;
  return sharedMove(c, i, to) ? null : 'DISK_INSUFFICIENT';
};

export const antiAffinityKept: Refuse = (c, u, i, to) => {
  const w = c.workloads[i]!;
  const self = w.host === to ? 1 : 0;
  for (const g of w.antiAffinity) if ((u.groups.get(g)?.get(to) ?? 0) - self > 0) return 'ANTI_AFFINITY';
  return null;
};

/** The checks, in the order they run: static properties of the host first, room last. */
export const FEASIBILITY_CHECKS: readonly FeasibilityCheck[] = [
  { name: 'same-host', codes: ['SAME_HOST'], refuse: sameHost },
  { name: 'allowed-host', codes: ['NOT_ALLOWED'], refuse: allowedHost },
  { name: 'host-up', codes: ['HOST_DOWN', 'HOST_SUSPECT'], refuse: hostUp },
  { name: 'host-not-draining', codes: ['HOST_IN_MAINTENANCE'], refuse: hostNotDraining },
  { name: 'template-available', codes: ['TEMPLATE_MISSING'], refuse: templateAvailable },
  { name: 'storage-pool-present', codes: ['STORAGE_POOL_MISSING'], refuse: storagePoolPresent },
  { name: 'networks-attached', codes: ['NETWORK_MISSING'], refuse: networksAttached },
  { name: 'live-migration-possible', codes: ['CRIU_UNSUPPORTED'], refuse: liveMigrationPossible },
  { name: 'cpu-vendor', codes: ['CPU_VENDOR_MISMATCH'], refuse: cpuVendorMatches },
  { name: 'cpu-family', codes: ['CPU_FAMILY_MISMATCH'], refuse: cpuFamilyMatches },
  { name: 'cpu-flags', codes: ['CPU_FLAGS_MISSING'], refuse: cpuFlagsPresent },
  { name: 'memory-room', codes: ['MEMORY_INSUFFICIENT'], refuse: memoryRoom },
  { name: 'cpu-room', codes: ['CPU_INSUFFICIENT'], refuse: cpuRoom },
  { name: 'disk-room', codes: ['DISK_INSUFFICIENT'], refuse: diskRoom },
  { name: 'anti-affinity', codes: ['ANTI_AFFINITY'], refuse: antiAffinityKept },
];

/** Why workload `index` may not go to host `to`: the first check that refuses, or null. */
export function firstRefusal(c: PlanCluster, u: Usage, i: number, to: number): RefusalCode | null {
  // FEASIBILITY_CHECKS, spelled out: each call site sees one function, so V8 inlines them (the
  // planner asks millions of times); a unit test keeps this the declared order
  return (
    sameHost(c, u, i, to) ??
    allowedHost(c, u, i, to) ??
    hostUp(c, u, i, to) ??
    hostNotDraining(c, u, i, to) ??
    templateAvailable(c, u, i, to) ??
    storagePoolPresent(c, u, i, to) ??
    networksAttached(c, u, i, to) ??
    liveMigrationPossible(c, u, i, to) ??
    cpuVendorMatches(c, u, i, to) ??
    cpuFamilyMatches(c, u, i, to) ??
    cpuFlagsPresent(c, u, i, to) ??
    memoryRoom(c, u, i, to) ??
    cpuRoom(c, u, i, to) ??
    diskRoom(c, u, i, to) ??
    antiAffinityKept(c, u, i, to)
  );
}

/** Every check that refuses, in order (empty: the move is feasible). */
export function allRefusals(cluster: PlanCluster, usage: Usage, index: number, to: number): RefusalCode[] {
  const codes: RefusalCode[] = [];
  for (const check of FEASIBILITY_CHECKS) {
    const code = check.refuse(cluster, usage, index, to);
    if (code !== null) codes.push(code);
  }
  return codes;
}

const mib = (bytes: number) => Math.max(0, Math.floor(bytes / MiB));

/** The sentence for a refusal, from the same view the check looked at. */
export function explainRefusal(code: RefusalCode, { cluster: c, usage: u, index: i, to }: MoveQuery): string {
  const w = c.workloads[i]!;
  const h = c.hosts[to]!;
  switch (code) {
    case 'SAME_HOST':
      return `${w.id} already runs on ${h.id}`;
    case 'NOT_ALLOWED':
      return 'not among the hosts the workload may run on';
    case 'HOST_DOWN':
    case 'HOST_SUSPECT':
      return `host is ${h.state}`;
    case 'HOST_IN_MAINTENANCE':
      return 'host is in planned maintenance';
    case 'TEMPLATE_MISSING':
      return `no template ${w.template}`;
    case 'STORAGE_POOL_MISSING':
      return `no storage pool ${w.pool}`;
    case 'NETWORK_MISSING':
      return `not attached to ${w.networks.filter((n) => !h.networks.has(n)).join(', ')}`;
    case 'CRIU_UNSUPPORTED':
      return `a live migration needs usable CRIU on both hosts; ${[w.host >= 0 ? c.hosts[w.host]! : null, h]
        .filter((x) => x && !x.live)
        .map((x) => x!.id)
        .join(' and ')} has none`;
    case 'CPU_VENDOR_MISMATCH':
      return `CPU vendor ${h.cpuVendor}, the workload runs on ${w.cpuNeeds?.vendor}`;
    case 'CPU_FAMILY_MISMATCH':
      return `CPU family ${h.cpuFamily}, the workload runs on family ${w.cpuNeeds?.family}`;
    case 'CPU_FLAGS_MISSING': {
      const missing = (w.cpuNeeds?.flags ?? []).filter((f) => !h.cpuFlags.has(f));
      return `CPU lacks ${missing.length} flag(s) the workload may use: ${missing.slice(0, 12).join(' ')}${missing.length > 12 ? ' …' : ''}`;
    }
    case 'MEMORY_INSUFFICIENT':
      return `needs ${mib(w.mem)} MiB, ${mib(h.memTotal - usedApartFrom(c, u.mem, i, to, w.mem))} MiB unallocated`;
    case 'CPU_INSUFFICIENT':
      return `needs ${w.cpu} vCPUs, ${h.cpuTotal - usedApartFrom(c, u.cpu, i, to, w.cpu)} unallocated`;
    case 'DISK_INSUFFICIENT': {
      const slot = h.pools.get(w.pool)!;
      return `needs ${mib(w.disk)} MiB in pool ${w.pool}, ${mib(c.pools[slot]!.total - u.poolUsed[slot]!)} MiB free`;
    }
    case 'ANTI_AFFINITY': {
      const groups = new Set(w.antiAffinity);
      const clash = [...u.residents[to]!].find((k) => k !== i && c.workloads[k]!.antiAffinity.some((g) => groups.has(g)));
      return clash === undefined ? 'a workload of its anti-affinity group is on its way there' : `runs ${c.workloads[clash]!.id}, which shares an anti-affinity group`;
    }
    case 'HA_ADMISSION':
      return 'refused by HA admission control';
  }
}
