import type { WorkloadRecord, WorkloadSpec } from '@ferry/protocol';
import type { PlacementPolicy } from './placement.ts';
import { MiB, PoolProofs, inMaintenance, workloadsByHost, type ClusterSnapshot } from './snapshot.ts';

/**
 * HA admission control, like vSphere HA's "cluster resource percentage" policy: a new workload is
 * admitted only where, afterwards, the HA workloads of any one failed host could still be
 * restarted by the others — their memory fits in the memory the other hosts have left in total,
 * and the largest of them fits on one of those hosts. Memory only (the resource a restart cannot
 * overcommit); hosts that are down or in maintenance neither fail nor take restarts. HA workloads
 * on local pools are not counted: they cannot be restarted anyway (the failover reports them).
 */
export interface HaAdmissionState {
  hostIds: string[];
  /** allocatable memory left (bytes, never below 0) */
  free: number[];
  /** memory of the restartable HA workloads on each host */
  haMem: number[];
  /** the largest of them */
  largestHa: number[];
  /** which hosts provably share which pools (built with the state; absent: built when asked) */
  proofs?: PoolProofs;
}

/**
 * Whether an HA workload on `pool` at `hostId` could be restarted elsewhere: another host that
 * counts provably mounts its pool.
 */
function restartableFrom(state: HaAdmissionState, snapshot: ClusterSnapshot, hostId: string, pool: string): boolean {
  state.proofs ??= PoolProofs.of(snapshot);
  return state.proofs.sharesWithAny(pool, hostId, hostSet(state));
}

const hostSets = new WeakMap<string[], ReadonlySet<string>>();
const hostSet = (state: HaAdmissionState): ReadonlySet<string> => {
  let set = hostSets.get(state.hostIds);
  if (!set) hostSets.set(state.hostIds, (set = new Set(state.hostIds)));
  return set;
};

/** The state for a snapshot: O(hosts + workloads + probes). */
export function haAdmissionState(snapshot: ClusterSnapshot, policy: PlacementPolicy): HaAdmissionState {
  const hosts = snapshot.hosts.filter((h) => h.state === 'up' && !inMaintenance(snapshot, h.id));
  const state: HaAdmissionState = { hostIds: hosts.map((h) => h.id), free: [], haMem: [], largestHa: [], proofs: PoolProofs.of(snapshot) };
  const residents = workloadsByHost(snapshot);
  for (const host of hosts) {
    const resident = residents.get(host.id) ?? [];
    const allocated = resident.reduce((s, w) => s + w.spec.resources.memoryMiB * MiB, 0);
    state.free.push(Math.max(0, host.capacity.memory.totalBytes * policy.memoryOvercommit - allocated));
    const restartable = (w: WorkloadRecord) => w.spec.ha.enabled && w.phase !== 'failed' && w.phase !== 'stopped' && restartableFrom(state, snapshot, host.id, w.spec.pool);
    const ha = resident.filter((w) => w.hostId === host.id && restartable(w)).map((w) => w.spec.resources.memoryMiB * MiB);
    state.haMem.push(ha.reduce((s, m) => s + m, 0));
    state.largestHa.push(ha.reduce((m, x) => Math.max(m, x), 0));
  }
  return state;
}

/** The first host whose failure could not be absorbed, as a sentence; null when every one could. */
export function haAdmissionShortfall(state: HaAdmissionState): string | null {
  const n = state.hostIds.length;
  const freeTotal = state.free.reduce((s, f) => s + f, 0);
  // the two largest free values give "the most free memory on any other host" in O(1) per host
  let first = -1;
  let second = -1;
  for (let i = 0; i < n; i++) {
    if (first < 0 || state.free[i]! > state.free[first]!) [first, second] = [i, first];
    else if (second < 0 || state.free[i]! > state.free[second]!) second = i;
  }
  const mib = (bytes: number) => Math.round(bytes / MiB);
  for (let i = 0; i < n; i++) {
    if (state.haMem[i] === 0) continue;
    const elsewhere = freeTotal - state.free[i]!;
    if (state.haMem[i]! > elsewhere) {
      return `if ${state.hostIds[i]} failed, its HA workloads (${mib(state.haMem[i]!)} MiB) would not fit in the ${mib(elsewhere)} MiB the other hosts have left`;
    }
    const biggestOther = i === first ? (second < 0 ? 0 : state.free[second]!) : first < 0 ? 0 : state.free[first]!;
    if (state.largestHa[i]! > biggestOther) {
      return `if ${state.hostIds[i]} failed, its largest HA workload (${mib(state.largestHa[i]!)} MiB) would fit on no other host (at most ${mib(biggestOther)} MiB left on one)`;
    }
  }
  return null;
}

/**
 * Would placing `spec` on `hostId` keep room for any single host to fail? Null when it would. A
 * cluster that is already short (a host died, capacity shrank) admits nothing new until it is
 * not, as vSphere's strict admission control does.
 */
export function haAdmissionProblem(
  spec: WorkloadSpec,
  hostId: string,
  snapshot: ClusterSnapshot,
  policy: PlacementPolicy,
  before = haAdmissionState(snapshot, policy),
  /** starting a stopped workload: its memory is allocated on the host already, only its HA load is new */
  allocated = false,
): string | null {
  const i = before.hostIds.indexOf(hostId);
  if (i < 0) return null; // not a host that counts (placement refuses it for its own reasons)
  return haAdmissionShortfall(haAdmissionAfter(spec, i, snapshot, before, allocated));
}

/** The state once `spec` is placed on host `i` of `before` (a new state; `before` is left as it is). */
export function haAdmissionAfter(spec: WorkloadSpec, i: number, snapshot: ClusterSnapshot, before: HaAdmissionState, allocated = false): HaAdmissionState {
  const hostId = before.hostIds[i]!;
  const mem = spec.resources.memoryMiB * MiB;
  const counts = spec.ha.enabled && restartableFrom(before, snapshot, hostId, spec.pool);
  return {
    ...before,
    hostIds: before.hostIds,
    free: before.free.map((f, k) => (k === i && !allocated ? Math.max(0, f - mem) : f)),
    haMem: before.haMem.map((h, k) => (k === i && counts ? h + mem : h)),
    largestHa: before.largestHa.map((l, k) => (k === i && counts ? Math.max(l, mem) : l)),
  };
}

/**
 * Admission for starting a stopped workload where it is (vSphere checks at power-on too): its
 * memory already counts on its host, its HA load would be new. Null when it may start.
 */
export function haAdmissionForStart(workload: WorkloadRecord, snapshot: ClusterSnapshot, policy: PlacementPolicy): string | null {
  if (!policy.haAdmission || !workload.hostId || !workload.spec.ha.enabled || workload.phase !== 'stopped') return null;
  return haAdmissionProblem(workload.spec, workload.hostId, snapshot, policy, haAdmissionState(snapshot, policy), true);
}
