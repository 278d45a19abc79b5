import type { CpuInfo, HostRecord, PlacementDecision, WorkloadSpec } from '@ferry/protocol';
import { haAdmissionProblem, haAdmissionState } from './admission.ts';
import { allRefusals, explainRefusal, firstRefusal, type RefusalCode } from './feasibility.ts';
import { Usage, type PlanCluster } from './planner/model.ts';
import { modelFromSnapshot } from './planner/from-snapshot.ts';
import { MiB, workloadsOnHost, type ClusterSnapshot } from './snapshot.ts';

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
  code: RefusalCode;
  message: string;
}

export type PlacementResult = { ok: true; decision: PlacementDecision; refusals: HostRefusal[] } | { ok: false; refusals: HostRefusal[]; refused: Record<string, number> };

export interface HostCheckOptions {
  /** moving an existing workload: its root filesystem comes along, so no template is needed, and
   * its processes keep running on the CPU features they started under; `live`: it moves live
   * (CRIU on both hosts), as the planner's moves of running workloads do */
  migrating?: { cpu: CpuInfo; from?: string; live?: boolean };
}

/** The one cluster view the feasibility checks read, built for one workload (feasibility.ts). */
export interface FeasibilityView {
  cluster: PlanCluster;
  usage: Usage;
  /** the workload asked about */
  index: number;
  hostIndex: ReadonlyMap<string, number>;
}

export function feasibilityView(spec: WorkloadSpec, snapshot: ClusterSnapshot, policy: PlacementPolicy, options: HostCheckOptions = {}): FeasibilityView {
  const m = options.migrating;
  const cluster = modelFromSnapshot(snapshot, { policy, subject: { spec, from: m?.from ?? null, cpu: m?.cpu ?? null, created: !m, live: m?.live ?? false } });
  return { cluster, usage: new Usage(cluster), index: cluster.workloads.length - 1, hostIndex: new Map(cluster.hosts.map((h, i) => [h.id, i])) };
}

const refusalsAt = (view: FeasibilityView, to: number, codes: RefusalCode[]): HostRefusal[] =>
  codes.map((code) => ({ hostId: view.cluster.hosts[to]!.id, code, message: explainRefusal(code, { ...view, to }) }));

/** CPU problems of running a workload started under `from` on `to` (Ferry compares; CRIU does not). */
export function cpuProblems(from: Pick<CpuInfo, 'vendor' | 'family' | 'flags'>, to: CpuInfo): Array<{ code: string; message: string }> {
  const problems: Array<{ code: string; message: string }> = [];
  if (from.vendor !== to.vendor) problems.push({ code: 'CPU_VENDOR_MISMATCH', message: `CPU vendor ${to.vendor}, the workload runs on ${from.vendor}` });
  else if (from.family !== to.family) problems.push({ code: 'CPU_FAMILY_MISMATCH', message: `CPU family ${to.family}, the workload runs on family ${from.family}` });
  const have = new Set(to.flags);
  const missing = from.flags.filter((flag) => !have.has(flag));
  if (missing.length > 0)
    problems.push({ code: 'CPU_FLAGS_MISSING', message: `CPU lacks ${missing.length} flag(s) the workload may use: ${missing.slice(0, 12).join(' ')}${missing.length > 12 ? ' …' : ''}` });
  return problems;
}

/** Every reason `host` cannot take `spec` (empty when it can): every check of feasibility.ts that refuses. */
export function hostProblems(spec: WorkloadSpec, host: HostRecord, snapshot: ClusterSnapshot, policy: PlacementPolicy, options: HostCheckOptions = {}): HostRefusal[] {
  const known = snapshot.hosts.some((h) => h.id === host.id);
  const view = feasibilityView(spec, known ? snapshot : { ...snapshot, hosts: [...snapshot.hosts, host] }, policy, options);
  const to = view.hostIndex.get(host.id)!;
  return refusalsAt(view, to, allRefusals(view.cluster, view.usage, view.index, to));
}

/** Why `host` cannot take `spec`, or null when it can: the first of its problems. */
export function refusalFor(spec: WorkloadSpec, host: HostRecord, snapshot: ClusterSnapshot, policy: PlacementPolicy, options: HostCheckOptions = {}): HostRefusal | null {
  return hostProblems(spec, host, snapshot, policy, options)[0] ?? null;
}

/**
 * Picks a host for a new workload: feasibility filters, then spread (most memory left after
 * placement), with a bonus for hosts running workloads of the same affinity group.
 */
export function placeWorkload(spec: WorkloadSpec, snapshot: ClusterSnapshot, policy = DEFAULT_PLACEMENT_POLICY, options: HostCheckOptions & { exclude?: string } = {}): PlacementResult {
  const refusals: HostRefusal[] = [];
  const feasible: Array<{ host: HostRecord; score: number; freeAfter: number }> = [];
  const view = feasibilityView(spec, snapshot, policy, options);
  for (const host of [...snapshot.hosts].sort((a, b) => a.id.localeCompare(b.id))) {
    if (host.id === options.exclude) continue;
    const to = view.hostIndex.get(host.id)!;
    const code = firstRefusal(view.cluster, view.usage, view.index, to);
    if (code) {
      refusals.push(...refusalsAt(view, to, [code]));
      continue;
    }
    const resident = workloadsOnHost(snapshot, host.id);
    const allocatable = view.cluster.hosts[to]!.memTotal;
    const freeAfter = allocatable - view.usage.mem[to]! - spec.resources.memoryMiB * MiB;
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
