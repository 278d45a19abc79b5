import type { MigrationStrategy, PlanMove, PlanRecord } from '@ferry/protocol';
import { chooseStrategy } from './migration.ts';
import { DEFAULT_COSTS, modelPrediction, type CostModel } from './migration-prediction.ts';
import { DEFAULT_PLACEMENT_POLICY, type PlacementPolicy } from './placement.ts';
import { clusterRevision, modelFromSnapshot } from './planner/from-snapshot.ts';
import { planEvacuation, type EvacuationOptions } from './planner/evacuate.ts';
import { planRebalance, type RebalanceOptions } from './planner/rebalance.ts';
import type { PlannedMove } from './planner/rebalance.ts';
import type { ClusterSnapshot } from './snapshot.ts';

function toMoves(snapshot: ClusterSnapshot, moves: PlannedMove[], costs: CostModel): PlanMove[] {
  return moves.map((m) => {
    const workload = snapshot.workloads.find((w) => w.spec.id === m.workload)!;
    const source = snapshot.hosts.find((h) => h.id === m.from)!;
    const destination = snapshot.hosts.find((h) => h.id === m.to)!;
    const choice = chooseStrategy(source, destination, workload.phase === 'running', { mode: 'auto', strategy: null });
    const strategy: MigrationStrategy = choice.ok ? choice.strategy : 'cold';
    return {
      workload: m.workload,
      from: m.from,
      to: m.to,
      strategy,
      predicted: modelPrediction(strategy, workload.spec.resources.memoryMiB * 2 ** 20, m.bytes, costs),
      reason: m.reason,
      status: 'pending',
      migrationId: null,
    };
  });
}

type PlanDraft = Omit<PlanRecord, 'id' | 'createdAt' | 'updatedAt'>;

/**
 * Whether a plan nobody executed within `ttlMs` of being made (a dry run left behind) has
 * expired. Only planned plans expire: executing and finished ones are history.
 */
export function planExpired(plan: Pick<PlanRecord, 'state' | 'createdAt'>, ttlMs: number, now: number): boolean {
  return plan.state === 'planned' && now - plan.createdAt >= ttlMs;
}

/** A rebalance plan for the snapshot: score before and after, and every move with why and what it costs. */
export function buildRebalancePlan(snapshot: ClusterSnapshot, options: Partial<RebalanceOptions> & { pinned?: ReadonlySet<string>; policy?: PlacementPolicy; costs?: CostModel } = {}): PlanDraft {
  const cluster = modelFromSnapshot(snapshot, { policy: options.policy ?? DEFAULT_PLACEMENT_POLICY, pinned: options.pinned ?? new Set() });
  const plan = planRebalance(cluster, options);
  return {
    kind: 'rebalance',
    state: 'planned',
    revision: clusterRevision(snapshot),
    hostId: null,
    scoreBefore: plan.scoreBefore,
    scoreAfter: plan.scoreAfter,
    moves: toMoves(snapshot, plan.moves, options.costs ?? DEFAULT_COSTS),
    reason: plan.moves.length === 0 ? `nothing to do: ${plan.stopped}` : `${plan.moves.length} move(s) lower the score ${plan.scoreBefore.toFixed(4)} → ${plan.scoreAfter.toFixed(4)}; ${plan.stopped}`,
    params: { maxMoves: options.maxMoves ?? null, minGain: options.minGain ?? null },
    finishedAt: null,
  };
}

export type EvacuationDraft = { ok: true; plan: PlanDraft } | { ok: false; reason: string; unplaced: Array<{ workload: string; refused: Record<string, number> }> };

/** The plan that empties `hostId`, or a refusal with every reason (nothing moves then). */
export function buildEvacuationPlan(snapshot: ClusterSnapshot, hostId: string, options: Partial<EvacuationOptions> & { policy?: PlacementPolicy; costs?: CostModel } = {}): EvacuationDraft {
  const host = snapshot.hosts.find((h) => h.id === hostId);
  // nothing can be migrated off a host that is not answering: that is failover's job
  if (host && host.state !== 'up') return { ok: false, reason: `${hostId} is ${host.state}; a host is emptied live only while it is up`, unplaced: [] };
  const cluster = modelFromSnapshot(snapshot, { policy: options.policy ?? DEFAULT_PLACEMENT_POLICY });
  const result = planEvacuation(cluster, [hostId], options);
  if (!result.ok) return { ok: false, reason: result.reason, unplaced: result.unplaced };
  return {
    ok: true,
    plan: {
      kind: 'evacuate',
      state: 'planned',
      revision: clusterRevision(snapshot),
      hostId,
      scoreBefore: null,
      scoreAfter: null,
      moves: toMoves(snapshot, result.moves, options.costs ?? DEFAULT_COSTS),
      reason: `empties ${hostId} for maintenance: ${result.moves.length} workload(s), HA first`,
      params: { mode: options.mode ?? 'spread' },
      finishedAt: null,
    },
  };
}
