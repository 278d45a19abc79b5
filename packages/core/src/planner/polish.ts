import { firstRefusal } from '../feasibility.ts';
import { moveBytes, type PlanCluster, type Usage } from './model.ts';
import type { ClusterScore } from './score.ts';
import { GAIN_EPSILON } from './gain.ts';

export interface Swap {
  /** the move made first: feasible as the cluster is */
  first: { index: number; to: number; bytes: number };
  /** feasible once the first is made */
  second: { index: number; to: number; bytes: number };
  /** the score after both */
  after: number;
  /** gain of both, less both moves' cost */
  net: number;
}

export interface SwapSearch {
  cluster: PlanCluster;
  usage: Usage;
  score: ClusterScore;
  /** the most loaded hosts: one workload leaves each */
  sources: readonly number[];
  /** the least loaded: one workload of theirs goes the other way */
  destinations: readonly number[];
  /** what a move of that many bytes costs, in score */
  cost: (bytes: number) => number;
  minGain: number;
}

/**
 * The local-search polish, for when no single move lowers the score: two workloads exchange
 * hosts (a big one from a loaded host for a small one from a light host) when both moves together
 * lower it, although each alone would not (hbal stops there). One of the two orders must be
 * feasible step by step, as a plan runs: the first move on the cluster as it is, the second after it.
 *
 * Each pair is scored exactly: the first move is applied to the sums and taken back.
 */
export function findSwap(s: SwapSearch): Swap | null {
  const { cluster, usage, score } = s;
  const raw = (i: number, t: number) => usage.move(i, t);
  const current = score.value();
  let best: Swap | null = null;
  let bestNet = s.minGain;
  const movable = (host: number) => [...usage.residents[host]!].filter((i) => !cluster.workloads[i]!.pinned).sort((x, y) => x - y);
  for (const a of s.sources) {
    const fromA = movable(a);
    if (fromA.length === 0) continue;
    for (const b of s.destinations) {
      if (a === b) continue;
      const fromB = movable(b);
      for (const i of fromA) {
        const iBytes = moveBytes(cluster, i, b);
        const iFeasible = firstRefusal(cluster, usage, i, b) === null;
        score.apply(i, b, raw);
        for (const j of fromB) {
          const after = score.after(j, a);
          const gain = current - after;
          if (gain <= GAIN_EPSILON) continue;
          const jBytes = moveBytes(cluster, j, a);
          const net = gain - s.cost(iBytes) - s.cost(jBytes);
          if (!(net > bestNet)) continue;
          // i first, as the cluster is now (with i already on b)
          if (iFeasible && firstRefusal(cluster, usage, j, a) === null) {
            best = { first: { index: i, to: b, bytes: iBytes }, second: { index: j, to: a, bytes: jBytes }, after, net };
            bestNet = net;
            continue;
          }
          // or j first: check it on the cluster without i moved
          score.apply(i, a, raw);
          if (firstRefusal(cluster, usage, j, a) === null) {
            score.apply(j, a, raw);
            if (firstRefusal(cluster, usage, i, b) === null) {
              best = { first: { index: j, to: a, bytes: jBytes }, second: { index: i, to: b, bytes: iBytes }, after, net };
              bestNet = net;
            }
            score.apply(j, b, raw);
          }
          score.apply(i, b, raw);
        }
        score.apply(i, a, raw);
      }
    }
  }
  return best;
}
