import { firstRefusal } from '../feasibility.ts';
import { Usage, cloneCluster, sharedMove, type PlanCluster } from './model.ts';

export interface StagedMove {
  workload: string;
  from: string;
  to: string;
}

export interface PlanStages {
  /** per move (in plan order): its stage, from 1; the moves of one stage run in parallel */
  stage: number[];
  /** per move: indexes of the moves (of earlier stages) that must have completed before it may start */
  dependsOn: number[][];
}

/**
 * Orders a plan's moves for execution, like Ganeti hbal's jobsets: which moves need the room
 * another move of the plan frees, and so must wait for it. A plan is made one move after another;
 * run in parallel, a move into a host that an earlier move of the plan empties could find it
 * still full (the earlier one is still running, its memory counted on both hosts).
 *
 * Each move goes to the earliest stage at which it passes every check (firstRefusal) on the
 * cluster as that stage finds it, in the worst case: every move of an earlier stage completed;
 * every other move of its own stage in flight, holding room on its destination and not yet
 * releasing its source. A move never goes to a stage before one that an earlier move into the
 * same host (or the same storage) is in, nor before or with an earlier move of its own workload,
 * so placing it can break no move placed before it. Moves that need nothing from each other thus
 * run together, whatever their order in the plan.
 *
 * Its dependencies are the moves of earlier stages that free room where it goes (they leave its
 * destination host or storage) and those of its own workload — reduced to the ones it cannot do
 * without when that set suffices. When a move fails, its dependents (and theirs) must not start;
 * every other move still finds the room it was planned with, whichever moves failed.
 *
 * Pure: the cluster given is not changed.
 */
export function planStages(input: PlanCluster, moves: readonly StagedMove[]): PlanStages {
  const cluster = cloneCluster(input);
  const usage = new Usage(cluster);
  const hostIndex = new Map(cluster.hosts.map((h, i) => [h.id, i]));
  const workloadIndex = new Map(cluster.workloads.map((w, i) => [w.id, i]));
  const stage: number[] = [];
  const dependsOn: number[][] = [];
  /** per resource key (`h<host>`, `s<storage>`): placed moves that arrive there, and that leave it */
  const into = new Map<string, number[]>();
  const from = new Map<string, number[]>();
  const byWorkload = new Map<string, number[]>();
  /** each placed move's workload index and source host (for taking it back) */
  const placed: Array<{ index: number; from: number } | null> = [];
  let last = 0;

  const keysOf = (index: number, a: number, b: number): { into: string[]; leaves: string[] } => {
    const w = cluster.workloads[index]!;
    // (the workload is on `a`, as the plan leaves it)
    const shared = sharedMove(cluster, index, b);
    const source = cluster.hosts[a]!.pools.get(w.pool);
    const dest = cluster.hosts[b]!.pools.get(w.pool);
    return {
      into: [`h${b}`, ...(!shared && dest !== undefined ? [`s${dest}`] : [])],
      leaves: [`h${a}`, ...(!shared && source !== undefined ? [`s${source}`] : [])],
    };
  };
  const add = (map: Map<string, number[]>, key: string, k: number) => {
    const list = map.get(key);
    if (list) list.push(k);
    else map.set(key, [k]);
  };

  /** Runs `check` with the given placed moves taken back (their workloads on their sources), then puts them back. */
  const without = <T>(undo: number[], check: () => T): T => {
    const sorted = [...new Set(undo)].sort((a, b) => b - a);
    const back: Array<[number, number]> = [];
    for (const k of sorted) {
      const p = placed[k]!;
      back.push([p.index, cluster.workloads[p.index]!.host]);
      usage.move(p.index, p.from);
    }
    try {
      return check();
    } finally {
      for (let i = back.length - 1; i >= 0; i--) usage.move(back[i]![0], back[i]![1]);
    }
  };

  moves.forEach((move, j) => {
    const index = workloadIndex.get(move.workload);
    const a = hostIndex.get(move.from);
    const b = hostIndex.get(move.to);
    if (index === undefined || a === undefined || b === undefined || cluster.workloads[index]!.host !== a) {
      // not a move of this cluster as the plan leaves it: after everything before it, alone
      stage.push(++last);
      dependsOn.push(moves.slice(0, j).map((_, k) => k));
      placed.push(null);
      return;
    }
    const keys = keysOf(index, a, b);
    let lowest = 1;
    for (const key of keys.into) for (const k of into.get(key) ?? []) lowest = Math.max(lowest, stage[k]!);
    const own = byWorkload.get(move.workload) ?? [];
    for (const k of own) lowest = Math.max(lowest, stage[k]! + 1);
    // the placed moves leaving where this one goes: taken back for stages they are not done by
    const leaving = [...new Set(keys.into.flatMap((key) => from.get(key) ?? []))];
    const dual = new Set(keys.into.flatMap((key) => into.get(key) ?? []).filter((k) => leaving.includes(k)));
    let chosen = last + 1;
    for (let s = lowest; s <= last; s++) {
      if ([...dual].some((k) => stage[k] === s)) continue;
      const pending = leaving.filter((k) => stage[k]! >= s);
      if (without(pending, () => firstRefusal(cluster, usage, index, b)) === null) {
        chosen = s;
        break;
      }
    }
    // what it needs: the moves of earlier stages that free room where it goes, and its own workload's
    const candidates = leaving.filter((k) => stage[k]! < chosen && !own.includes(k));
    // on the cluster as its stage finds it (the moves leaving there from that stage on not done yet)
    const pendingThen = leaving.filter((k) => stage[k]! >= chosen);
    const feasibleWithout = (undo: number[]) => without([...pendingThen, ...undo], () => firstRefusal(cluster, usage, index, b)) === null;
    let needs = candidates;
    if (candidates.length > 0 && feasibleWithout([])) {
      const necessary = candidates.filter((k) => !feasibleWithout([k]));
      if (feasibleWithout(candidates.filter((k) => !necessary.includes(k)))) needs = necessary;
    }
    // (a move that fails even at the last stage keeps every candidate: the migration's own check decides)
    stage.push(chosen);
    last = Math.max(last, chosen);
    dependsOn.push([...own.filter((k) => stage[k]! < chosen), ...needs].sort((x, y) => x - y));
    placed.push({ index, from: a });
    for (const key of keys.into) add(into, key, j);
    for (const key of keys.leaves) add(from, key, j);
    add(byWorkload, move.workload, j);
    usage.move(index, b);
  });
  return { stage, dependsOn };
}
