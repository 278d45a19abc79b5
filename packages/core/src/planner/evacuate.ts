import type { ClusterSnapshot } from '../snapshot.ts';
import { explainRefusal, firstRefusal, type RefusalCode } from '../feasibility.ts';
import { moveBytes, stateOf, type PlanCluster, type PlanningState, type Usage } from './model.ts';
import type { PlannedMove } from './rebalance.ts';

export interface EvacuationOptions {
  /** spread: the destination with the most free memory; binpack: the fullest one that fits */
  mode: 'spread' | 'binpack';
  /** after the moves, the rest must still hold the HA workloads of any single host (N+1) */
  keepHaCapacity: boolean;
  /** move what can leave and list the rest (default: all or nothing) */
  partial: boolean;
  /**
   * workloads on (or coming to) the drained hosts that cannot move now, with what they are doing
   * (busyWorkloads): listed as staying, never moved. A resident the model pins is busy even if
   * absent here.
   */
  busy: ReadonlyMap<string, string>;
}

export interface UnplacedWorkload {
  workload: string;
  /** how many hosts refused it, by reason */
  refused: Record<string, number>;
  /** the refusals in words: each code with what the first host refusing with it said */
  reason: string;
  /** what it is doing that keeps it from moving now (no host was asked then: `refused` is empty) */
  busy?: string;
}

/**
 * The workloads on `hostIds`, or migrating onto them, that a migration would refuse to move now
 * (planMigration takes only a running or stopped workload not already moving), each with what it
 * is doing. An evacuation lists them as staying instead of planning moves that would fail: a
 * workload being created is not there to move yet, and one mid-migration is the migration's.
 * (A failed workload is not listed: nothing runs, and failover or an operator deals with it.)
 */
export function busyWorkloads(snapshot: Pick<ClusterSnapshot, 'workloads'>, hostIds: readonly string[]): Map<string, string> {
  const drained = new Set(hostIds);
  const busy = new Map<string, string>();
  for (const w of snapshot.workloads) {
    const here = w.hostId !== null && drained.has(w.hostId);
    const arriving = w.migratingTo !== null && w.migratingTo !== w.hostId && drained.has(w.migratingTo);
    if (w.phase === 'failed' || (!here && !arriving)) continue;
    if (arriving) busy.set(w.spec.id, `migrating onto ${w.migratingTo} from ${w.hostId ?? 'nowhere'}`);
    else if (w.migratingTo !== null && w.migratingTo !== w.hostId) busy.set(w.spec.id, `migrating to ${w.migratingTo}`);
    else if (w.phase === 'pending') busy.set(w.spec.id, `waiting to be created on ${w.hostId}`);
    else if (w.phase === 'creating') busy.set(w.spec.id, 'being created');
    else if (w.phase !== 'running' && w.phase !== 'stopped') busy.set(w.spec.id, w.phase);
  }
  return busy;
}

const busyReason = (what: string) => `it cannot move while ${what}: a migration takes only a running or stopped workload that is not already moving; evacuate again once it has settled`;

/** ok: the moves (with `partial`, `unplaced` lists the workloads that stay); not ok: nothing moves, every reason. */
export type EvacuationPlan = { ok: true; moves: PlannedMove[]; unplaced: UnplacedWorkload[] } | { ok: false; moves: []; unplaced: UnplacedWorkload[]; reason: string };

/**
 * Empties `drain` hosts: HA workloads first (by priority), then the largest, each to the best
 * host that passes every check (first-fit decreasing over hosts ordered by free memory). All or
 * nothing by default: when one workload has nowhere to go, the plan is refused with every
 * reason, no moves. With `partial`, the others move and the plan lists the ones that stay, each
 * with its reasons. (Either way the rest must keep room for the HA workloads of any one host.)
 * Workloads that cannot move now (pinned in the model, or in `busy`: being created or
 * mid-migration) are never moved: they are listed as staying, with what they are doing.
 */
export function planEvacuation(input: PlanCluster | PlanningState, drain: string[], options: Partial<EvacuationOptions> = {}): EvacuationPlan {
  const state = stateOf(input);
  return state.trial((move) => evacuate(state, move, drain, { mode: 'spread', keepHaCapacity: true, partial: false, busy: new Map(), ...options }));
}

function evacuate(state: PlanningState, apply: (index: number, to: number) => void, drain: string[], o: EvacuationOptions): EvacuationPlan {
  const draining = new Set(drain);
  const { usage } = state;
  // the drained hosts take nothing from now on (a view: the shared hosts stay as they are)
  const cluster: PlanCluster = {
    ...state.cluster,
    hosts: state.cluster.hosts.map((h) => (draining.has(h.id) ? { ...h, accepting: false, draining: true } : h)),
  };
  const hostIndex = new Map(cluster.hosts.map((h, i) => [h.id, i]));
  const leaving = drain.flatMap((id) => [...(usage.residents[hostIndex.get(id) ?? -1] ?? [])]);
  leaving.sort((a, b) => {
    const wa = cluster.workloads[a]!;
    const wb = cluster.workloads[b]!;
    return wb.haPriority - wa.haPriority || wb.mem - wa.mem || wa.id.localeCompare(wb.id);
  });
  // Accepting hosts ordered by free memory, kept sorted as moves land.
  const free = (i: number) => cluster.hosts[i]!.memTotal - usage.mem[i]!;
  const order = cluster.hosts.map((_, i) => i).filter((i) => cluster.hosts[i]!.accepting);
  order.sort((a, b) => free(b) - free(a));
  const moves: PlannedMove[] = [];
  const unplaced: UnplacedWorkload[] = [];
  for (const index of leaving) {
    const w = cluster.workloads[index]!;
    if (w.pinned || o.busy.has(w.id)) {
      // creating, mid-migration or otherwise busy (the model pins it): planMigration would refuse the move
      const what = o.busy.get(w.id) ?? 'it is in another operation';
      unplaced.push({ workload: w.id, refused: {}, reason: busyReason(what), busy: what });
      continue;
    }
    const refused: Record<string, number> = {};
    /** what the first host refusing with each code said */
    const said = new Map<RefusalCode, string>();
    let chosen = -1;
    const candidates = o.mode === 'spread' ? order : [...order].reverse();
    for (const to of candidates) {
      if (o.mode === 'binpack' && free(to) < w.mem) continue;
      const why = firstRefusal(cluster, usage, index, to);
      if (why === null) {
        chosen = to;
        break;
      }
      refused[why] = (refused[why] ?? 0) + 1;
      if (!said.has(why)) said.set(why, `${cluster.hosts[to]!.id}: ${explainRefusal(why, { cluster, usage, index, to })}`);
      if (o.mode === 'spread' && why === 'MEMORY_INSUFFICIENT') {
        // every later host has even less free memory
        refused.MEMORY_INSUFFICIENT = (refused.MEMORY_INSUFFICIENT ?? 0) + (candidates.length - candidates.indexOf(to) - 1);
        break;
      }
    }
    if (chosen < 0) {
      unplaced.push({ workload: w.id, refused, reason: unplacedReason(refused, said, candidates.length) });
      continue;
    }
    const from = cluster.hosts[w.host]!.id;
    const bytes = moveBytes(cluster, index, chosen);
    apply(index, chosen);
    // keep `order` sorted by free memory: take the host out and put it back in place
    order.splice(order.indexOf(chosen), 1);
    let lo = 0;
    let hi = order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (free(order[mid]!) >= free(chosen)) lo = mid + 1;
      else hi = mid;
    }
    order.splice(lo, 0, chosen);
    moves.push({
      workload: w.id,
      from,
      to: cluster.hosts[chosen]!.id,
      bytes,
      score: 0,
      reason: `${from} is being drained; ${cluster.hosts[chosen]!.id} passes every check and has ${Math.round(free(chosen) / 2 ** 20)} MiB free after it`,
    });
  }
  // busy workloads that are not residents in the model (waiting to be created, migrating onto a drained host)
  const listed = new Set(unplaced.map((u) => u.workload));
  for (const [id, what] of o.busy) if (!listed.has(id)) unplaced.push({ workload: id, refused: {}, reason: busyReason(what), busy: what });
  if (unplaced.length > 0 && !o.partial) return { ok: false, moves: [], unplaced, reason: unplacedSummary(unplaced) };
  if (o.keepHaCapacity) {
    const shortfall = haShortfall(cluster, usage);
    if (shortfall) return { ok: false, moves: [], unplaced, reason: shortfall };
  }
  return { ok: true, moves, unplaced };
}

/** "2 workload(s) have nowhere to go", "1 workload(s) cannot move now (busy)", or both */
function unplacedSummary(unplaced: readonly UnplacedWorkload[]): string {
  const busy = unplaced.filter((u) => u.busy !== undefined).length;
  const nowhere = unplaced.length - busy;
  return [...(nowhere > 0 ? [`${nowhere} workload(s) have nowhere to go`] : []), ...(busy > 0 ? [`${busy} workload(s) cannot move now (being created or migrating)`] : [])].join('; ');
}

/** "refused by all 3 hosts: NOT_ALLOWED ×2 (h1: not among …); MEMORY_INSUFFICIENT ×1 (h3: needs …)" */
function unplacedReason(refused: Record<string, number>, said: Map<RefusalCode, string>, hosts: number): string {
  if (hosts === 0) return 'no host takes workloads';
  const parts = Object.entries(refused)
    .sort(([, a], [, b]) => b - a)
    .map(([code, n]) => `${code} ×${n}${said.has(code as RefusalCode) ? ` (${said.get(code as RefusalCode)})` : ''}`);
  return `refused by ${hosts === 1 ? 'the only host' : `all ${hosts} hosts`} that take workloads: ${parts.join('; ')}`;
}

/**
 * N+1 for HA: could the remaining hosts still restart the HA workloads of whichever one host fails?
 * (Memory only, pooled: a necessary condition, cheap at any size.) Null when they could.
 */
export function haShortfall(cluster: PlanCluster, usage: Usage): string | null {
  const accepting = cluster.hosts.map((_, i) => i).filter((i) => cluster.hosts[i]!.accepting);
  const freeTotal = accepting.reduce((s, i) => s + Math.max(0, cluster.hosts[i]!.memTotal - usage.mem[i]!), 0);
  let worst = { host: -1, ha: 0, free: 0 };
  for (const i of accepting) {
    const ha = usage.haMem[i]!;
    if (ha > worst.ha) worst = { host: i, ha, free: Math.max(0, cluster.hosts[i]!.memTotal - usage.mem[i]!) };
  }
  if (worst.host < 0) return null;
  const elsewhere = freeTotal - worst.free;
  return elsewhere >= worst.ha
    ? null
    : `after it, the cluster could not restart the HA workloads of ${cluster.hosts[worst.host]!.id} (${Math.round(worst.ha / 2 ** 20)} MiB) if that host failed: ${Math.round(elsewhere / 2 ** 20)} MiB free elsewhere`;
}
