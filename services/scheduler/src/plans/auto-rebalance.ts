import type { FlowProducer } from 'bullmq';
import { buildRebalancePlan, RebalanceTrigger, type PlacementPolicy } from '@ferry/core';
import type { Logger } from '@ferry/runtime';
import type { PlanRecord } from '@ferry/protocol';
import { executePlan, recentlyMoved, savePlan, StalePlanError, type ClusterStore } from '@ferry/store';
import type { LeaderElection } from '../leader.ts';

export interface AutoRebalanceOptions {
  intervalMs: number;
  /** score a plan must gain to count as an imbalance */
  threshold: number;
  /** consecutive checks an imbalance must last */
  rounds: number;
  maxMoves: number;
  cooldownMs: number;
  policy: PlacementPolicy;
  /** told of every plan it makes (metrics) */
  onPlan?: (plan: PlanRecord) => void;
}

/**
 * DRS-style automatic rebalancing on the leader: every interval, plan (dry); when the achievable
 * gain stays above the threshold for `rounds` checks and no other plan is executing, execute it.
 * Recently moved workloads are pinned (cooldown), so nothing oscillates.
 */
export class AutoRebalancer {
  private timer: NodeJS.Timeout | undefined;
  private readonly trigger: RebalanceTrigger;
  private running = false;

  constructor(
    private readonly store: ClusterStore,
    private readonly flows: FlowProducer,
    private readonly keyPrefix: string,
    private readonly leader: LeaderElection,
    private readonly o: AutoRebalanceOptions,
    private readonly log: Logger,
  ) {
    this.trigger = new RebalanceTrigger(o.threshold, o.rounds);
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.o.intervalMs);
    this.log.info({ intervalMs: this.o.intervalMs, threshold: this.o.threshold, rounds: this.o.rounds }, 'automatic rebalancing on (it acts on the leader only)');
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async check(): Promise<void> {
    if (this.running || !this.leader.isLeader()) return;
    this.running = true;
    try {
      if ((await this.store.plans.all()).some((p) => p.state === 'executing')) return;
      const snapshot = await this.store.snapshot();
      const draft = buildRebalancePlan(snapshot, {
        maxMoves: this.o.maxMoves,
        policy: this.o.policy,
        pinned: await recentlyMoved(this.store, this.o.cooldownMs),
        history: await this.store.measuredMigrations.recent(),
      });
      const gain = (draft.scoreBefore ?? 0) - (draft.scoreAfter ?? 0);
      if (!this.trigger.observe(draft.moves.length > 0 ? gain : 0)) return;
      const plan = await savePlan(this.store, { ...draft, params: { ...draft.params, automatic: true } });
      this.o.onPlan?.(plan);
      await executePlan(this.store, this.flows, this.keyPrefix, plan);
      this.log.info({ planId: plan.id, moves: plan.moves.length, gain }, 'automatic rebalance started');
    } catch (err) {
      if (!(err instanceof StalePlanError)) this.log.error({ err }, 'automatic rebalance check failed');
    } finally {
      this.running = false;
    }
  }
}
