import type { CpuInfo, HostRecord, PlacementDecision, WorkloadSpec } from '@ferry/protocol';
import { haAdmissionAfter, haAdmissionShortfall, haAdmissionState, type HaAdmissionState } from './admission.ts';
import { allRefusals, explainRefusal, firstRefusal, type RefusalCode } from './feasibility.ts';
import { Usage, type PlanCluster } from './planner/model.ts';
import { modelFromSnapshot, subjectWorkload } from './planner/from-snapshot.ts';
import { MiB, workloadsByHost, type ClusterSnapshot } from './snapshot.ts';

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

/** Host-by-host explanations a placement keeps at most per refusal code (`refused` counts every refusal). */
export const MAX_REFUSAL_DETAILS = 25;

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
  return new Placer(snapshot, policy, [spec], options).place(0);
}

/**
 * Places workloads one after another on one model of the cluster, each seeing the room the ones
 * before it took: the model, the affinity index and the HA admission state are built once
 * (O(hosts + workloads)); each placement then costs O(hosts) — the checks of feasibility.ts on
 * every host, the score, and admission on the best feasible hosts. placeWorkload is a Placer of
 * one; the scheduler places a batch of new workloads with one (a snapshot per placement made
 * placement O(cluster) per workload: 2–3 placements/s at 5,000 hosts).
 */
export class Placer {
  private readonly view: FeasibilityView;
  private readonly first: number;
  private readonly sortedHosts: HostRecord[];
  /** affinity group → hosts holding a workload of it */
  private readonly affinity = new Map<string, Set<string>>();
  private admission: HaAdmissionState | null | undefined;
  private readonly specs: WorkloadSpec[];

  constructor(
    private readonly snapshot: ClusterSnapshot,
    private readonly policy: PlacementPolicy,
    specs: readonly WorkloadSpec[],
    private readonly options: HostCheckOptions & { exclude?: string; cpus?: readonly CpuInfo[] } = {},
  ) {
    this.specs = [...specs];
    const m = options.migrating;
    // `cpus`: each workload's own CPU (the one its processes started under) where they differ
    const subjects = specs.map((spec, k) => ({ spec, from: m?.from ?? null, cpu: options.cpus?.[k] ?? m?.cpu ?? null, created: !m, live: m?.live ?? false }));
    const cluster = modelFromSnapshot(snapshot, { policy, subjects });
    this.view = { cluster, usage: new Usage(cluster), index: cluster.workloads.length - 1, hostIndex: new Map(cluster.hosts.map((h, i) => [h.id, i])) };
    this.first = cluster.workloads.length - specs.length;
    this.sortedHosts = [...snapshot.hosts].sort((a, b) => a.id.localeCompare(b.id));
    const asked = new Set(specs.map((s) => s.id));
    for (const [hostId, resident] of workloadsByHost(snapshot)) {
      for (const w of resident) if (!asked.has(w.spec.id)) for (const g of w.spec.placement.affinity) this.holds(g, hostId);
    }
  }

  /**
   * More new workloads for this placer (a placer of new workloads only): each is then decided with
   * place(k), k counting on from the specs before, against the model as the placements so far left
   * it. The API's HA admission keeps one placer for successive batches of creates this way rather
   * than building the model of the whole cluster for each (AdmissionBatches). Returns the first k.
   */
  add(more: readonly WorkloadSpec[]): number {
    if (this.options.migrating || this.options.cpus) throw new Error('only a placer of new workloads without their own CPUs takes more');
    const first = this.specs.length;
    for (const spec of more) {
      this.specs.push(spec);
      this.view.cluster.workloads.push(subjectWorkload({ spec, from: null, cpu: null, created: true, live: false }, this.view.hostIndex, this.policy));
    }
    return first;
  }

  /** How many workloads this placer has been given (the constructor's and add's). */
  get size(): number {
    return this.specs.length;
  }

  private holds(group: string, hostId: string): void {
    let hosts = this.affinity.get(group);
    if (!hosts) this.affinity.set(group, (hosts = new Set()));
    hosts.add(hostId);
  }

  private admissionState(): HaAdmissionState | null {
    if (this.admission === undefined) {
      const applies = this.policy.haAdmission === true && !this.options.migrating;
      this.admission = applies ? haAdmissionState(this.snapshot, this.policy) : null;
    }
    return this.admission;
  }

  /**
   * Decides the k-th workload; when it fits, its room is taken (the next ones see it). Each is
   * decided once, in any order.
   */
  place(k: number): PlacementResult {
    const spec = this.specs[k]!;
    const view = { ...this.view, index: this.first + k };
    const { cluster, usage } = view;
    const refusals: HostRefusal[] = [];
    const refused: Record<string, number> = {};
    // every refusal is counted; the first MAX_REFUSAL_DETAILS of each code are explained host by
    // host (a message per host of thousands cost more than the placement, and filled failed records)
    const refuse = (code: string, explain: () => HostRefusal) => {
      refused[code] = (refused[code] ?? 0) + 1;
      if (refused[code]! <= MAX_REFUSAL_DETAILS) refusals.push(explain());
    };
    const feasible: Array<{ host: HostRecord; to: number; score: number; freeAfter: number }> = [];
    for (const host of this.sortedHosts) {
      if (host.id === this.options.exclude) continue;
      const to = view.hostIndex.get(host.id)!;
      const code = firstRefusal(cluster, usage, view.index, to);
      if (code) {
        refuse(code, () => refusalsAt(view, to, [code])[0]!);
        continue;
      }
      const allocatable = cluster.hosts[to]!.memTotal;
      const freeAfter = allocatable - usage.mem[to]! - spec.resources.memoryMiB * MiB;
      const affinity = spec.placement.affinity.some((g) => this.affinity.get(g)?.has(host.id)) ? 1 : 0;
      const fill = freeAfter / allocatable;
      feasible.push({ host, to, score: affinity + (this.policy.mode === 'spread' ? fill : 1 - fill), freeAfter });
    }
    // best score first (ties: host id order). Admission rarely refuses the best, so the best is
    // found in one pass and the whole list sorted only when it does (5,000 hosts: a sort per
    // placement was most of its cost)
    let top = 0;
    for (let k2 = 1; k2 < feasible.length; k2++) if (feasible[k2]!.score > feasible[top]!.score) top = k2;
    if (top > 0) feasible.unshift(...feasible.splice(top, 1));
    // admission last: the best host that keeps the cluster's failover room, if any
    const admission = this.admissionState();
    let chosen = -1;
    let admitted: HaAdmissionState | null = null;
    for (let k2 = 0; k2 < feasible.length && chosen < 0; k2++) {
      if (k2 === 1) feasible.splice(1, feasible.length - 1, ...feasible.slice(1).sort((a, b) => b.score - a.score));
      const i = admission ? admission.hostIds.indexOf(feasible[k2]!.host.id) : -1;
      const after = admission && i >= 0 ? haAdmissionAfter(spec, i, this.snapshot, admission) : null;
      const problem = after ? haAdmissionShortfall(after) : null;
      if (problem) refuse('HA_ADMISSION', () => ({ hostId: feasible[k2]!.host.id, code: 'HA_ADMISSION', message: problem }));
      else [chosen, admitted] = [k2, after];
    }
    if (chosen < 0) return { ok: false, refusals, refused };
    const best = feasible[chosen]!;
    // the next workloads of this placer see this one where it went (a moving one leaves its host)
    if (this.options.migrating) usage.move(view.index, best.to);
    else usage.place(view.index, best.to);
    for (const g of spec.placement.affinity) this.holds(g, best.host.id);
    if (admitted) this.admission = admitted;
    const why = chosen > 0 ? 'is the best that keeps the failover room' : this.policy.mode === 'spread' ? 'has the most unallocated memory afterwards' : 'is the fullest that still fits (binpack)';
    const reason = `${feasible.length} of ${this.snapshot.hosts.length} hosts can take it; ${best.host.id} ${why} (${Math.floor(best.freeAfter / MiB)} MiB left)${best.score >= 1 ? ' and runs its affinity group' : ''}${chosen > 0 ? `; ${chosen} better host(s) refused by HA admission control` : ''}`;
    return { ok: true, decision: { hostId: best.host.id, reason, refused }, refusals };
  }
}
