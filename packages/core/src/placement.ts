import type { CpuInfo, HostRecord, PlacementDecision, WorkloadSpec } from '@ferry/protocol';
import { haAdmissionProblem, haAdmissionState } from './admission.ts';
import { MiB, inMaintenance, sharedPoolProven, workloadsOnHost, type ClusterSnapshot } from './snapshot.ts';

export interface PlacementPolicy {
  /** memory handed out per byte of host memory (1 = no overcommit) */
  memoryOvercommit: number;
  /** spread: the host with the most memory left afterwards; binpack: the fullest host that fits */
  mode: 'spread' | 'binpack';
  /**
   * A cluster CPU baseline, like VMware EVC: workloads are declared to use no CPU feature beyond
   * it, so any host offering the baseline can take them. Containers share the host kernel and
   * cannot have CPUID masked; this is the operator's promise, checked against hosts, not enforced
   * inside workloads. Without it, a workload needs the features of the host it started on.
   */
  cpuBaseline?: Pick<CpuInfo, 'vendor' | 'family' | 'flags'>;
  /** vCPUs handed out per host CPU */
  cpuOvercommit: number;
  /**
   * HA admission control: a new workload goes only where the cluster can still restart the HA
   * workloads of any one failed host afterwards (see admission.ts). Creates only: failover
   * restarts and migrations must never be held back by it.
   */
  haAdmission?: boolean;
}

export const DEFAULT_PLACEMENT_POLICY: PlacementPolicy = { memoryOvercommit: 1, cpuOvercommit: 4, mode: 'spread' };

/** The configured placement settings (PLACEMENT_SETTINGS in @ferry/runtime), as the API and the scheduler both read them. */
export interface PlacementSettings {
  placementMode: PlacementPolicy['mode'];
  haAdmission: boolean;
  cpuBaseline?: PlacementPolicy['cpuBaseline'] | undefined;
}

/**
 * The one placement policy of a cluster, from its settings: the API and the scheduler both build
 * theirs here, so a dry run, a migration without a destination or a plan made by the API picks
 * the host the scheduler would.
 */
export function placementPolicy(settings: PlacementSettings): PlacementPolicy {
  return {
    ...DEFAULT_PLACEMENT_POLICY,
    mode: settings.placementMode,
    haAdmission: settings.haAdmission,
    ...(settings.cpuBaseline ? { cpuBaseline: settings.cpuBaseline } : {}),
  };
}

export interface HostRefusal {
  hostId: string;
  code: string;
  message: string;
}

export type PlacementResult =
  | { ok: true; decision: PlacementDecision; refusals: HostRefusal[] }
  | { ok: false; refusals: HostRefusal[]; refused: Record<string, number> };

export interface HostCheckOptions {
  /** moving an existing workload: its root filesystem comes along, so no template is needed, and
   * its processes keep running on the CPU features they started under */
  migrating?: { cpu: CpuInfo; from?: string };
}

/** CPU problems of running a workload started under `from` on `to` (Ferry compares; CRIU does not). */
export function cpuProblems(from: Pick<CpuInfo, 'vendor' | 'family' | 'flags'>, to: CpuInfo): Array<{ code: string; message: string }> {
  const problems: Array<{ code: string; message: string }> = [];
  if (from.vendor !== to.vendor) problems.push({ code: 'CPU_VENDOR_MISMATCH', message: `CPU vendor ${to.vendor}, the workload runs on ${from.vendor}` });
  else if (from.family !== to.family) problems.push({ code: 'CPU_FAMILY_MISMATCH', message: `CPU family ${to.family}, the workload runs on family ${from.family}` });
  const have = new Set(to.flags);
  const missing = from.flags.filter((flag) => !have.has(flag));
  if (missing.length > 0) problems.push({ code: 'CPU_FLAGS_MISSING', message: `CPU lacks ${missing.length} flag(s) the workload may use: ${missing.slice(0, 12).join(' ')}${missing.length > 12 ? ' …' : ''}` });
  return problems;
}

/** Every reason `host` cannot take `spec` (empty when it can). */
export function hostProblems(spec: WorkloadSpec, host: HostRecord, snapshot: ClusterSnapshot, policy: PlacementPolicy, options: HostCheckOptions = {}): HostRefusal[] {
  const problems: HostRefusal[] = [];
  const refuse = (code: string, message: string) => problems.push({ hostId: host.id, code, message });
  const { capacity } = host;
  if (spec.placement.hosts.length > 0 && !spec.placement.hosts.includes(host.id)) refuse('NOT_ALLOWED', 'not among the hosts the workload may run on');
  if (host.state !== 'up') refuse(host.state === 'down' ? 'HOST_DOWN' : 'HOST_SUSPECT', `host is ${host.state}`);
  if (inMaintenance(snapshot, host.id)) refuse('HOST_IN_MAINTENANCE', 'host is in planned maintenance');
  if (!options.migrating && !capacity.templates.some((t) => t.name === spec.template)) refuse('TEMPLATE_MISSING', `no template ${spec.template}`);
  const pool = capacity.pools.find((p) => p.id === spec.pool);
  if (!pool) refuse('STORAGE_POOL_MISSING', `no storage pool ${spec.pool}`);
  const missing = spec.networks.filter((a) => !capacity.networks.some((n) => n.name === a.network)).map((a) => a.network);
  if (missing.length > 0) refuse('NETWORK_MISSING', `not attached to ${missing.join(', ')}`);
  const required = policy.cpuBaseline ?? options.migrating?.cpu;
  if (required) for (const p of cpuProblems(required, capacity.cpu)) refuse(p.code, p.message);

  const resident = workloadsOnHost(snapshot, host.id).filter((w) => w.spec.id !== spec.id);
  const usedMemory = resident.reduce((sum, w) => sum + w.spec.resources.memoryMiB * MiB, 0);
  const memoryRoom = capacity.memory.totalBytes * policy.memoryOvercommit - usedMemory;
  if (spec.resources.memoryMiB * MiB > memoryRoom) {
    refuse('MEMORY_INSUFFICIENT', `needs ${spec.resources.memoryMiB} MiB, ${Math.max(0, Math.floor(memoryRoom / MiB))} MiB unallocated`);
  }
  const usedCpus = resident.reduce((sum, w) => sum + w.spec.resources.vcpus, 0);
  const cpuRoom = capacity.cpu.count * policy.cpuOvercommit - usedCpus;
  if (spec.resources.vcpus > cpuRoom) refuse('CPU_INSUFFICIENT', `needs ${spec.resources.vcpus} vCPUs, ${cpuRoom} unallocated`);
  // A move within a pool both hosts provably share copies nothing: no disk room needed.
  const sharedMove = options.migrating?.from !== undefined && sharedPoolProven(snapshot, spec.pool, options.migrating.from, host.id);
  if (pool && !sharedMove) {
    // Free bytes already reflect created root filesystems; workloads still being created have not used theirs yet.
    const pendingDisk = snapshot.workloads
      .filter((w) => w.spec.pool === spec.pool && w.spec.id !== spec.id && (w.phase === 'pending' || w.phase === 'creating'))
      .filter((w) => pool.shared || w.hostId === host.id)
      .reduce((sum, w) => sum + w.spec.resources.diskMiB * MiB, 0);
    if (spec.resources.diskMiB * MiB > pool.freeBytes - pendingDisk) {
      refuse('DISK_INSUFFICIENT', `needs ${spec.resources.diskMiB} MiB in pool ${pool.id}, ${Math.max(0, Math.floor((pool.freeBytes - pendingDisk) / MiB))} MiB free`);
    }
  }
  const groups = new Set(spec.placement.antiAffinity);
  const clash = resident.find((w) => w.spec.placement.antiAffinity.some((g) => groups.has(g)));
  if (clash) refuse('ANTI_AFFINITY', `runs ${clash.spec.id}, which shares an anti-affinity group`);
  return problems;
}

/** Why `host` cannot take `spec`, or null when it can: the first of its problems. */
export function refusalFor(spec: WorkloadSpec, host: HostRecord, snapshot: ClusterSnapshot, policy: PlacementPolicy, options: HostCheckOptions = {}): HostRefusal | null {
  return hostProblems(spec, host, snapshot, policy, options)[0] ?? null;
}

/**
 * Picks a host for a new workload: feasibility filters, then spread (most memory left after
 * placement), with a bonus for hosts running workloads of the same affinity group.
 */
export function placeWorkload(
  spec: WorkloadSpec,
  snapshot: ClusterSnapshot,
  policy = DEFAULT_PLACEMENT_POLICY,
  options: HostCheckOptions & { exclude?: string } = {},
): PlacementResult {
  const refusals: HostRefusal[] = [];
  const feasible: Array<{ host: HostRecord; score: number; freeAfter: number }> = [];
  for (const host of [...snapshot.hosts].sort((a, b) => a.id.localeCompare(b.id))) {
    if (host.id === options.exclude) continue;
    const refusal = refusalFor(spec, host, snapshot, policy, options);
    if (refusal) {
      refusals.push(refusal);
      continue;
    }
    const resident = workloadsOnHost(snapshot, host.id);
    const allocatable = host.capacity.memory.totalBytes * policy.memoryOvercommit;
    const freeAfter = allocatable - resident.reduce((s, w) => s + w.spec.resources.memoryMiB * MiB, 0) - spec.resources.memoryMiB * MiB;
    const affinity = resident.some((w) => w.spec.placement.affinity.some((g) => spec.placement.affinity.includes(g))) ? 1 : 0;
    const fill = freeAfter / allocatable;
    feasible.push({ host, score: affinity + (policy.mode === 'spread' ? fill : 1 - fill), freeAfter });
  }
  feasible.sort((a, b) => b.score - a.score);
  // admission last: the best host that keeps the cluster's failover room, if any
  const admissionApplies = policy.haAdmission === true && !options.migrating;
  const admission = admissionApplies ? haAdmissionState(snapshot, policy) : null;
  let chosen = -1;
  for (let k = 0; k < feasible.length && chosen < 0; k++) {
    const problem = admission ? haAdmissionProblem(spec, feasible[k]!.host.id, snapshot, policy, admission) : null;
    if (problem) refusals.push({ hostId: feasible[k]!.host.id, code: 'HA_ADMISSION', message: problem });
    else chosen = k;
  }
  const refused: Record<string, number> = {};
  for (const r of refusals) refused[r.code] = (refused[r.code] ?? 0) + 1;
  if (chosen < 0) return { ok: false, refusals, refused };
  const best = feasible[chosen]!;
  const why = chosen > 0 ? 'is the best that keeps the failover room' : policy.mode === 'spread' ? 'has the most unallocated memory afterwards' : 'is the fullest that still fits (binpack)';
  const reason = `${feasible.length} of ${snapshot.hosts.length} hosts can take it; ${best.host.id} ${why} (${Math.floor(best.freeAfter / MiB)} MiB left)${best.score >= 1 ? ' and runs its affinity group' : ''}${chosen > 0 ? `; ${chosen} better host(s) refused by HA admission control` : ''}`;
  return { ok: true, decision: { hostId: best.host.id, reason, refused }, refusals };
}
