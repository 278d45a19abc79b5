import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { PlanJobData, QUEUES, queuePrefix, type PlanMove, type PlanRecord } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import type { ClusterStore } from '@ferry/store';

/** How a finished plan went, from how each of its moves ended. */
export function planOutcome(plan: PlanRecord, statuses: PlanMove['status'][]): PlanRecord['state'] {
  if (statuses.every((s) => s === 'completed')) return 'completed';
  if (plan.params.cancelRequested === true) return 'cancelled';
  return 'failed';
}

/**
 * The parent job of a plan's flow runs once every child migration ended: it records how each
 * move went and the plan's outcome, and for an evacuation puts its host in maintenance once the
 * last workload left (a plan that did not empty it leaves it entering, saying why).
 */
export class PlanWorker {
  private worker: Worker | undefined;

  constructor(
    private readonly store: ClusterStore,
    private readonly keyPrefix: string,
    private readonly connection: Redis,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.worker = new Worker(QUEUES.plans, (job) => this.process(job), { connection: this.connection, prefix: queuePrefix(this.keyPrefix) });
    this.worker.on('error', (err) => this.log.error({ err }, 'plan worker error'));
  }

  async stop(): Promise<void> {
    await this.worker?.close(true);
  }

  private async process(job: Job): Promise<{ planId: string; state: PlanRecord['state'] }> {
    const data = PlanJobData.safeParse(job.data);
    if (job.name !== 'plan' || !data.success) throw new UnrecoverableError(`malformed plan job ${job.name}`);
    const plan = await this.store.plans.get(data.data.planId);
    if (!plan) throw new UnrecoverableError(`no plan ${data.data.planId}`);
    const moves: PlanMove[] = [];
    for (const move of plan.moves) {
      const m = move.migrationId ? await this.store.migrations.get(move.migrationId) : null;
      let status: PlanMove['status'] = move.status;
      if (m) status = m.state === 'completed' ? 'completed' : m.error?.code === 'CANCELLED' ? 'cancelled' : m.state === 'rolled-back' ? 'rolled-back' : 'failed';
      moves.push({ ...move, status });
    }
    const state = planOutcome(
      plan,
      moves.map((m) => m.status),
    );
    const now = Date.now();
    await this.store.plans.put(plan.id, { ...plan, moves, state, updatedAt: now, finishedAt: now });
    if (plan.kind === 'evacuate' && plan.hostId) {
      const maintenance = await this.store.maintenance.get(plan.hostId);
      if (maintenance?.planId === plan.id) {
        if (state === 'completed') await this.store.maintenance.put(plan.hostId, { ...maintenance, state: 'in', since: now });
        else this.log.warn({ hostId: plan.hostId, planId: plan.id, state }, 'evacuation did not empty the host: it stays entering maintenance');
      }
    }
    this.log.info({ planId: plan.id, kind: plan.kind, state, moves: moves.length }, 'plan finished');
    return { planId: plan.id, state };
  }
}
