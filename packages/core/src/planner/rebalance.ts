import { firstRefusal } from '../feasibility.ts';
import { moveBytes, stateOf, type PlanCluster, type PlanningState } from './model.ts';
import { ClusterScore, DEFAULT_WEIGHTS, type ScoreWeights } from './score.ts';

export interface PlannedMove {
  workload: string;
  from: string;
  to: string;
  bytes: number;
  /** score after this move */
  score: number;
  reason: string;
}

export interface RebalanceOptions {
  maxMoves: number;
  /** a move must lower the score at least this much */
  minGain: number;
  /** hosts looked at on each side per step (most loaded as sources, least loaded as destinations) */
  candidates: number;
  /**
   * What a move costs besides its bytes (orchestration, the freeze), in bytes: moves are ranked by
   * gain / (bytes + this), so the search prefers cheap moves without chasing tiny ones.
   */
  moveCostBytes: number;
  weights: ScoreWeights;
}

// minGain is absolute: one move changes a standard deviation over n hosts by about 1/n, so the
// threshold must stay small enough to matter at 10,000 hosts; the move budget bounds the plan.
export const DEFAULT_REBALANCE: RebalanceOptions = { maxMoves: 50, minGain: 5e-5, candidates: 8, moveCostBytes: 256 * 2 ** 20, weights: DEFAULT_WEIGHTS };

export interface RebalancePlan {
  moves: PlannedMove[];
  scoreBefore: number;
  scoreAfter: number;
  /** why the search stopped */
  stopped: string;
}

/**
 * Greedy search in the spirit of Ganeti hbal: at each step, among workloads on the most loaded
 * hosts (and every draining host) and destinations among the least loaded, take the feasible move
 * that lowers the cluster score most per byte it puts on the link (plus a fixed cost per move, so
 * a plan is not fifty moves of crumbs); stop at the move budget or
 * when no move gains at least `minGain`. The score never rises, and a balanced cluster gets no moves.
 */
export function planRebalance(input: PlanCluster | PlanningState, options: Partial<RebalanceOptions> = {}): RebalancePlan {
  const state = stateOf(input);
  return state.trial((move) => search(state, move, { ...DEFAULT_REBALANCE, ...options }));
}

function search(state: PlanningState, apply: (index: number, to: number) => void, o: RebalanceOptions): RebalancePlan {
  const { cluster, usage } = state;
  const score = new ClusterScore(cluster, usage, o.weights);
  const scoreBefore = score.value();
  const moves: PlannedMove[] = [];
  const hostIndexes = cluster.hosts.map((_, i) => i);
  let stopped = 'move budget reached';

  while (moves.length < o.maxMoves) {
    const current = score.value();
    const byLoad = hostIndexes.filter((i) => cluster.hosts[i]!.accepting).sort((a, b) => score.load(b) - score.load(a));
    // Sources: draining hosts, hosts breaking anti-affinity, hosts over capacity, and the most loaded.
    const clashing = new Set<number>();
    for (const perHost of usage.groups.values()) for (const [host, count] of perHost) if (count > 1) clashing.add(host);
    const sources = [
      ...new Set([...hostIndexes.filter((i) => cluster.hosts[i]!.draining && usage.residents[i]!.size > 0), ...clashing, ...byLoad.filter((i) => score.load(i) > 1), ...byLoad.slice(0, o.candidates)]),
    ];
    const destinations = byLoad.slice(-o.candidates).reverse();
    let best: { index: number; to: number; after: number; value: number } | null = null;
    for (const from of sources) {
      for (const index of usage.residents[from]!) {
        if (cluster.workloads[index]!.pinned) continue;
        for (const to of destinations) {
          if (to === from || firstRefusal(cluster, usage, index, to) !== null) continue;
          const after = score.after(index, to);
          const gain = current - after;
          if (gain < o.minGain) continue;
          const value = gain / (moveBytes(cluster, index, to) + o.moveCostBytes);
          // ties go to the lower workload index: residents' iteration order changes as moves are undone
          if (!best || value > best.value || (value === best.value && index < best.index)) best = { index, to, after, value };
        }
      }
    }
    if (!best) {
      stopped = 'no move gains enough';
      break;
    }
    const w = cluster.workloads[best.index]!;
    const from = cluster.hosts[w.host]!.id;
    const bytes = moveBytes(cluster, best.index, best.to);
    score.apply(best.index, best.to, apply);
    moves.push({
      workload: w.id,
      from,
      to: cluster.hosts[best.to]!.id,
      bytes,
      score: score.value(),
      reason: `lowers the cluster score ${current.toFixed(4)} → ${best.after.toFixed(4)}${cluster.hosts.find((h) => h.id === from)?.draining ? ` and empties draining host ${from}` : ''}`,
    });
  }
  return { moves, scoreBefore, scoreAfter: score.value(), stopped };
}
