import { firstRefusal } from '../feasibility.ts';
import { moveBytes, type PlanCluster, type Usage } from './model.ts';
import type { ClusterScore } from './score.ts';

/** A workload the search moved, with where it started (it may have moved more than once). */
export interface Displacement {
  index: number;
  origin: number;
}

export interface PruneContext {
  cluster: PlanCluster;
  usage: Usage;
  score: ClusterScore;
  /** moves a workload, through the plan's trial (so it is undone afterwards) */
  move: (index: number, to: number) => void;
  /** what a move of that many bytes costs, in score */
  cost: (bytes: number) => number;
}

/**
 * The last pass of the search: on the cluster as the search left it, each moved workload is
 * weighed again — what the score would lose if it stayed where it was — and a move worth less
 * than its cost is dropped (the workload stays). A greedy search takes moves for what they gain
 * when taken; later moves can make one of them nearly worthless (its room went to another), and
 * a swap can leave a lone earlier move redundant. Rounds until nothing more is dropped. Returns
 * the workloads that still move.
 */
export function pruneMoves(c: PruneContext, moved: Displacement[], cap?: LengthCap): Displacement[] {
  let keep = moved.filter((d) => c.cluster.workloads[d.index]!.host !== d.origin);
  for (let round = 0; round < 4; round++) {
    const current = c.score.value();
    // least worth first; ties by workload index (determinism)
    const worth = keep.map((d) => ({ d, loss: c.score.after(d.index, d.origin) - current }));
    worth.sort((a, b) => a.loss - b.loss || a.d.index - b.d.index);
    const dropped = new Set<number>();
    for (const { d } of worth) {
      const now = c.score.value();
      const loss = c.score.after(d.index, d.origin) - now;
      // the move as the plan will make it: from its origin to where it ends
      const bytes = moveBytes(c.cluster, d.index, c.cluster.workloads[d.index]!.host, d.origin);
      if (loss >= c.cost(bytes) || firstRefusal(c.cluster, c.usage, d.index, d.origin) !== null) continue;
      c.score.apply(d.index, d.origin, c.move);
      dropped.add(d.index);
    }
    if (dropped.size === 0) break;
    keep = keep.filter((d) => !dropped.has(d.index));
  }
  return cap && keep.length > cap.moves ? trimToLength(c, keep, cap) : keep;
}

/** At most this many moves, as long as the score stays at or below `score`. */
export interface LengthCap {
  moves: number;
  score: number;
  /** workloads that moved as the two halves of a swap: one half alone is rarely worth dropping */
  pairs: ReadonlyArray<readonly [number, number]>;
}

/**
 * Drops the moves worth least — single moves, or both halves of a swap together — until the plan
 * has `cap.moves` moves, never to where the score is back at `cap.score` or above. Each
 * candidate is weighed once, then again on the cluster as the drops before it left it, right
 * before it is dropped (as the prune above does): a few passes over the moves, not one per drop.
 */
function trimToLength(c: PruneContext, moved: Displacement[], cap: LengthCap): Displacement[] {
  let keep = moved;
  const byIndex = new Map(moved.map((d) => [d.index, d]));
  /** what dropping these costs per move dropped, or null when one of them cannot go back */
  const lossPerMove = (drop: Displacement[]): number | null => {
    const now = c.score.value();
    const undo: Array<[number, number]> = [];
    let feasible = true;
    for (const d of drop) {
      if (firstRefusal(c.cluster, c.usage, d.index, d.origin) !== null) {
        feasible = false;
        break;
      }
      undo.push([d.index, c.cluster.workloads[d.index]!.host]);
      c.score.apply(d.index, d.origin, c.move);
    }
    const loss = (c.score.value() - now) / drop.length;
    for (const [index, host] of undo.reverse()) c.score.apply(index, host, c.move);
    return feasible ? loss : null;
  };
  for (let round = 0; round < 4 && keep.length > cap.moves; round++) {
    const kept = new Set(keep.map((d) => d.index));
    const options: Displacement[][] = [...keep.map((d) => [d]), ...cap.pairs.filter(([a, b]) => kept.has(a) && kept.has(b)).map(([a, b]) => [byIndex.get(a)!, byIndex.get(b)!])];
    const weighed = options.flatMap((drop) => {
      const loss = lossPerMove(drop);
      return loss === null ? [] : [{ drop, loss }];
    });
    weighed.sort((a, b) => a.loss - b.loss || a.drop[0]!.index - b.drop[0]!.index);
    const dropped = new Set<number>();
    for (const { drop } of weighed) {
      if (keep.length - dropped.size - drop.length < cap.moves) continue;
      if (drop.some((d) => dropped.has(d.index))) continue;
      const loss = lossPerMove(drop);
      if (loss === null || c.score.value() + loss * drop.length >= cap.score) continue;
      for (const d of drop) {
        c.score.apply(d.index, d.origin, c.move);
        dropped.add(d.index);
      }
      if (keep.length - dropped.size <= cap.moves) break;
    }
    if (dropped.size === 0) break;
    keep = keep.filter((d) => !dropped.has(d.index));
  }
  return keep;
}
