import type { MeasuredMigration, MigrationStrategy, PlanMove, PlanRecord, PlanUnplaced } from '@ferry/protocol';
import { chooseStrategy } from './migration.ts';
import { DEFAULT_COSTS, predictMove, type CostModel } from './migration-prediction.ts';
import { DEFAULT_PLACEMENT_POLICY, type PlacementPolicy } from './placement.ts';
import { clusterRevision, modelFromSnapshot } from './planner/from-snapshot.ts';
import { busyWorkloads, planEvacuation, type EvacuationOptions } from './planner/evacuate.ts';
import { planRebalance, type RebalanceOptions } from './planner/rebalance.ts';
import type { PlannedMove } from './planner/rebalance.ts';
import { planStages } from './planner/stages.ts';
import type { PlanCluster } from './planner/model.ts';
import type { ClusterSnapshot } from './snapshot.ts';

/** What a plan's moves are predicted from: the cost model, scaled by the migrations measured so far (predictMove). */
export interface PredictionInputs {
  costs?: CostModel;
  history?: readonly MeasuredMigration[];
}

function toMoves(snapshot: ClusterSnapshot, cluster: PlanCluster, moves: PlannedMove[], { costs = DEFAULT_COSTS, history = [] }: PredictionInputs): PlanMove[] {
  // when each move may run: after the moves that free the room it needs (planner/stages.ts)
  const { stage, dependsOn } = planStages(cluster, moves);
  return moves.map((m, i) => {
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
      // the same prediction a migration asked for by hand gets (learned per strategy and host pair)
      predicted: (({ bytes, seconds, freezeMs, basis }) => ({ bytes, seconds, freezeMs, basis }))(
        predictMove({ strategy, source: m.from, destination: m.to, memoryBytes: workload.spec.resources.memoryMiB * 2 ** 20, bytes: m.bytes }, history, costs),
      ),
      reason: m.reason,
      status: 'pending',
      migrationId: null,
      stage: stage[i]!,
      dependsOn: dependsOn[i]!,
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
export function buildRebalancePlan(snapshot: ClusterSnapshot, options: Partial<RebalanceOptions> & { pinned?: ReadonlySet<string>; policy?: PlacementPolicy } & PredictionInputs = {}): PlanDraft {
  const cluster = modelFromSnapshot(snapshot, { policy: options.policy ?? DEFAULT_PLACEMENT_POLICY, pinned: options.pinned ?? new Set() });
  const plan = planRebalance(cluster, options);
  return {
    kind: 'rebalance',
    state: 'planned',
    revision: clusterRevision(snapshot),
    hostId: null,
    scoreBefore: plan.scoreBefore,
    scoreAfter: plan.scoreAfter,
    components: plan.components,
    moves: toMoves(snapshot, cluster, plan.moves, options),
    reason: plan.moves.length === 0 ? `nothing to do: ${plan.stopped}` : `${plan.moves.length} move(s) lower the score ${plan.scoreBefore.toFixed(4)} → ${plan.scoreAfter.toFixed(4)}; ${plan.stopped}`,
    params: {
      maxMoves: options.maxMoves ?? null,
      minGain: options.minGain ?? null,
      // what the plan was asked to weigh, when not the defaults
      ...(options.moveCost === undefined ? {} : { moveCost: options.moveCost }),
      ...(options.moveCostPerGiB === undefined ? {} : { moveCostPerGiB: options.moveCostPerGiB }),
      ...(options.weights === undefined ? {} : { weights: options.weights }),
    },
    finishedAt: null,
  };
}

export type EvacuationDraft = { ok: true; plan: PlanDraft } | { ok: false; reason: string; unplaced: PlanUnplaced[] };

/**
 * The plan that empties `hostId`, or a refusal with every reason (nothing moves then). With
 * `partial`, the workloads that cannot leave stay (the plan lists them, `unplaced`) and the rest move.
 */
export function buildEvacuationPlan(snapshot: ClusterSnapshot, hostId: string, options: Partial<EvacuationOptions> & { policy?: PlacementPolicy } & PredictionInputs = {}): EvacuationDraft {
  const host = snapshot.hosts.find((h) => h.id === hostId);
  // nothing can be migrated off a host that is not answering: that is failover's job
  if (host && host.state !== 'up') return { ok: false, reason: `${hostId} is ${host.state}; a host is emptied live only while it is up`, unplaced: [] };
  const cluster = modelFromSnapshot(snapshot, { policy: options.policy ?? DEFAULT_PLACEMENT_POLICY });
  // workloads being created or mid-migration are listed as staying, never moved (a migration would
  // refuse them); `options.busy` adds what the snapshot cannot show (a migration queued, not started)
  const busy = new Map([...(options.busy ?? []), ...busyWorkloads(snapshot, [hostId])]);
  const result = planEvacuation(cluster, [hostId], { ...options, busy });
  if (!result.ok) return { ok: false, reason: result.reason, unplaced: result.unplaced };
  const staying = result.unplaced.length > 0 ? `; ${result.unplaced.length} cannot leave and stay: ${result.unplaced.map((u) => u.workload).join(', ')}` : '';
  return {
    ok: true,
    plan: {
      kind: 'evacuate',
      state: 'planned',
      revision: clusterRevision(snapshot),
      hostId,
      scoreBefore: null,
      scoreAfter: null,
      moves: toMoves(snapshot, cluster, result.moves, options),
      ...(result.unplaced.length > 0 ? { unplaced: result.unplaced } : {}),
      reason: `${staying ? 'partly empties' : 'empties'} ${hostId} for maintenance: ${result.moves.length} workload(s), HA first${staying}`,
      params: { mode: options.mode ?? 'spread', ...(options.partial ? { partial: true } : {}) },
      finishedAt: null,
    },
  };
}

export interface PlanStep {
  /** moves that must not start now, each with its reason (the plan's reason for it, and why not) */
  cancel: Array<{ index: number; reason: string }>;
  /** moves to start now: one stage, every move it needs completed */
  start: number[];
  /** their stage; null: nothing is left to start */
  stage: number | null;
}

const stageOf = (move: PlanMove) => move.stage ?? 1;

/**
 * What an executing plan does once the moves it started have all ended (`moves` with their
 * statuses as they ended): the moves of the next stage start, except those needing a move that
 * did not complete — failed, rolled back, cancelled, or never started — which are cancelled
 * saying which one, and so are theirs in turn. A stage left with nothing to start is skipped.
 * A cancelled plan starts nothing more. Pure: the plan worker does the I/O.
 */
export function nextPlanStep(moves: readonly PlanMove[], cancelRequested: boolean): PlanStep {
  const status = moves.map((m) => m.status);
  const unstarted = new Set(moves.flatMap((m, i) => (m.status === 'pending' && m.migrationId === null ? [i] : [])));
  const cancel: PlanStep['cancel'] = [];
  if (cancelRequested) {
    for (const i of unstarted) cancel.push({ index: i, reason: `${moves[i]!.reason}; not started: the plan was cancelled` });
    return { cancel, start: [], stage: null };
  }
  while (unstarted.size > 0) {
    const stage = Math.min(...[...unstarted].map((i) => stageOf(moves[i]!)));
    const start: number[] = [];
    for (const i of [...unstarted].filter((k) => stageOf(moves[k]!) === stage).sort((a, b) => a - b)) {
      unstarted.delete(i);
      const missing = (moves[i]!.dependsOn ?? []).find((k) => status[k] !== 'completed');
      if (missing === undefined) {
        start.push(i);
        continue;
      }
      const dep = moves[missing];
      const what = dep
        ? `move ${missing + 1} (${dep.workload} ${dep.from} → ${dep.to}) completed first, and that one ${status[missing] === 'pending' ? 'never ran' : status[missing] === 'running' ? 'has not ended' : status[missing]}`
        : `move ${missing + 1} completed first, and the plan has no such move`;
      cancel.push({ index: i, reason: `${moves[i]!.reason}; not started: it needs ${what}` });
      status[i] = 'cancelled';
    }
    if (start.length > 0) return { cancel, start, stage };
  }
  return { cancel, start: [], stage: null };
}
