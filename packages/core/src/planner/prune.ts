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
export function pruneMoves(c: PruneContext, moved: Displacement[]): Displacement[] {
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
  return keep;
}
