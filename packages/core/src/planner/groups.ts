import { PlanningState, stateOf, type PlanCluster } from './model.ts';
import { planEvacuation, type EvacuationOptions } from './evacuate.ts';

export interface MaintenanceGroups {
  /** each set of hosts can be drained at the same time: the rest takes all their workloads */
  groups: string[][];
  /** hosts that cannot be drained even alone, and why */
  cannotDrain: Array<{ host: string; reason: string }>;
}

/**
 * Ganeti hroller's idea for rolling maintenance: partition the hosts into groups that can each be
 * emptied at once, fewest groups first-fit (largest hosts first), each group checked with the real
 * evacuation planner (capacity, CPU, networks, anti-affinity, HA headroom).
 */
export function maintenanceGroups(input: PlanCluster | PlanningState, options: Partial<EvacuationOptions> = {}): MaintenanceGroups {
  const state = stateOf(input);
  const { cluster, usage } = state;
  const hosts = cluster.hosts.map((h, i) => ({ id: h.id, i })).filter(({ i }) => cluster.hosts[i]!.accepting);
  hosts.sort((a, b) => usage.mem[b.i]! - usage.mem[a.i]! || a.id.localeCompare(b.id));
  const groups: string[][] = [];
  const cannotDrain: MaintenanceGroups['cannotDrain'] = [];
  for (const { id } of hosts) {
    const alone = planEvacuation(state, [id], options);
    if (!alone.ok) {
      cannotDrain.push({ host: id, reason: alone.reason });
      continue;
    }
    const fits = groups.find((group) => planEvacuation(state, [...group, id], options).ok);
    if (fits) fits.push(id);
    else groups.push([id]);
  }
  return { groups, cannotDrain };
}
