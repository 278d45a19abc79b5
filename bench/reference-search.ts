/**
 * The reference for the planner benchmark, never used by the product: Ganeti hbal's full greedy
 * search. Every step scores every single move (every movable workload × every host, through the
 * same feasibility checks and the same score as the planner), takes the one that lowers the score
 * most, and goes on until no move lowers it. O(workloads × hosts) per step: fine at 100 hosts,
 * hours at 1,000 — which is why the planner does not do it.
 */
import { ClusterScore, DEFAULT_WEIGHTS, GAIN_EPSILON, firstRefusal, moveBytes, type PlanningState, type ScoreWeights } from '@ferry/core';

export interface ReferenceResult {
  scoreBefore: number;
  scoreAfter: number;
  moves: number;
  bytes: number;
  ms: number;
}

export function referenceSearch(state: PlanningState, weights: Partial<ScoreWeights> = DEFAULT_WEIGHTS): ReferenceResult {
  const started = performance.now();
  return state.trial((move) => {
    const { cluster, usage } = state;
    const score = new ClusterScore(cluster, usage, weights);
    const scoreBefore = score.value();
    const hosts = cluster.hosts.length;
    let moves = 0;
    let bytes = 0;
    for (;;) {
      const current = score.value();
      let best: { index: number; to: number; gain: number } | null = null;
      cluster.workloads.forEach((w, index) => {
        if (w.pinned || w.host < 0) return;
        const from = cluster.hosts[w.host]!;
        if (!from.accepting && !from.draining) return;
        for (let to = 0; to < hosts; to++) {
          if (to === w.host) continue;
          const gain = current - score.after(index, to);
          if (gain <= GAIN_EPSILON || (best && gain <= best.gain)) continue;
          if (firstRefusal(cluster, usage, index, to) === null) best = { index, to, gain };
        }
      });
      if (!best) break;
      const { index, to } = best;
      bytes += moveBytes(cluster, index, to);
      score.apply(index, to, move);
      moves++;
    }
    return { scoreBefore, scoreAfter: score.value(), moves, bytes, ms: performance.now() - started };
  });
}
