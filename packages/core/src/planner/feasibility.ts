import { firstRefusal } from '../feasibility.ts';
import { Usage, cloneCluster, type PlanCluster } from './model.ts';

export interface Move {
  workload: string;
  to: string;
}

/**
 * Replays moves one after another and reports every step that would put a host over capacity,
 * break anti-affinity, or go where the workload may not run. Empty: the plan is feasible at every
 * point (memory is counted on both hosts while a move runs).
 */
export function planProblems(input: PlanCluster, moves: Move[]): string[] {
  const cluster = cloneCluster(input);
  const usage = new Usage(cluster);
  const byId = new Map(cluster.workloads.map((w, i) => [w.id, i]));
  const hostIndex = new Map(cluster.hosts.map((h, i) => [h.id, i]));
  const problems: string[] = [];
  moves.forEach((move, step) => {
    const index = byId.get(move.workload);
    const to = hostIndex.get(move.to);
    if (index === undefined || to === undefined) {
      problems.push(`step ${step + 1}: unknown workload or host in ${move.workload} → ${move.to}`);
      return;
    }
    const why = firstRefusal(cluster, usage, index, to);
    if (why) problems.push(`step ${step + 1}: ${move.workload} → ${move.to}: ${why}`);
    usage.move(index, to);
  });
  return problems;
}
