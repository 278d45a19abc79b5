import { Queue, UnrecoverableError, WaitingChildrenError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { nextPlanStep } from '@ferry/core';
import { PlanJobData, QUEUES, queuePrefix, type MigrationRecord, type PlanMove, type PlanRecord } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { startPlanMoves, type ClusterStore } from '@ferry/store';

/** How a finished plan went, from how each of its moves ended. */
export function planOutcome(plan: PlanRecord, statuses: PlanMove['status'][], cancelled = false): PlanRecord['state'] {
  if (statuses.every((s) => s === 'completed')) return 'completed';
  if (cancelled || plan.params.cancelRequested === true) return 'cancelled';
  return 'failed';
}

/** A move's status from its migration's record (a migration that has not ended counts as failed: its stage is over). */
function statusOf(m: MigrationRecord): PlanMove['status'] {
  return m.state === 'completed' ? 'completed' : m.error?.code === 'CANCELLED' ? 'cancelled' : m.state === 'rolled-back' ? 'rolled-back' : 'failed';
}

/**
 * The job of a plan runs its stages (hbal's jobsets): each time the migrations it started have
 * all ended, it records how each went and starts the next stage's moves as its children
 * (nextPlanStep: a move whose dependency did not complete is cancelled, saying which), then
 * waits for them (BullMQ's waiting-children). With nothing left to start it records the plan's
 * outcome, and for an evacuation puts its host in maintenance once every move completed (a plan
 * that did not leaves it entering, saying why).
 */
export class PlanWorker {
  private worker: Worker | undefined;
  private migrations: Queue | undefined;

  constructor(
    private readonly store: ClusterStore,
    private readonly keyPrefix: string,
    private readonly connection: Redis,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.migrations = new Queue(QUEUES.migrations, { connection: this.connection, prefix: queuePrefix(this.keyPrefix) });
    this.worker = new Worker(QUEUES.plans, (job, token) => this.process(job, token), { connection: this.connection, prefix: queuePrefix(this.keyPrefix) });
    this.worker.on('error', (err) => this.log.error({ err }, 'plan worker error'));
  }

  async stop(): Promise<void> {
    await this.worker?.close(true);
    await this.migrations?.close();
  }

  private async process(job: Job, token?: string): Promise<{ planId: string; state: PlanRecord['state'] }> {
    const data = PlanJobData.safeParse(job.data);
    if (job.name !== 'plan' || !data.success) throw new UnrecoverableError(`malformed plan job ${job.name}`);
    for (;;) {
      const plan = await this.store.plans.get(data.data.planId);
      if (!plan) throw new UnrecoverableError(`no plan ${data.data.planId}`);
      const moves: PlanMove[] = [];
      for (const move of plan.moves) {
        const m = move.migrationId ? await this.store.migrations.get(move.migrationId) : null;
        moves.push(m ? { ...move, status: statusOf(m) } : move);
      }
      const cancelled = plan.params.cancelRequested === true || (await this.store.planCancelRequested(plan.id));
      const step = nextPlanStep(moves, cancelled);
      for (const c of step.cancel) moves[c.index] = { ...moves[c.index]!, status: 'cancelled', reason: c.reason };
      if (step.stage === null) return this.finish(plan, moves, cancelled);

      const { moves: started, jobs } = await startPlanMoves(this.store, { id: plan.id, moves }, step.start, await this.store.snapshot());
      await this.store.plans.put(plan.id, { ...plan, moves: started, updatedAt: Date.now() });
      const parent = { id: job.id!, queue: job.queueQualifiedName };
      for (const child of jobs) await this.migrations!.add(child.name, child.data, { ...child.opts, parent });
      // a cancel that came while this stage was starting: DELETE /v1/plans/:id read the plan before it
      if (await this.store.planCancelRequested(plan.id)) for (const child of jobs) await this.store.requestCancel(child.data.migrationId);
      this.log.info({ planId: plan.id, stage: step.stage, started: jobs.length, cancelled: step.cancel.length }, 'plan stage started');
      if (jobs.length > 0 && (await job.moveToWaitingChildren(token!))) throw new WaitingChildrenError();
      // nothing to wait for (no move of the stage could start, or all already ended): on to the next
    }
  }

  private async finish(plan: PlanRecord, moves: PlanMove[], cancelled: boolean): Promise<{ planId: string; state: PlanRecord['state'] }> {
    const state = planOutcome(
      plan,
      moves.map((m) => m.status),
      cancelled,
    );
    const now = Date.now();
    await this.store.plans.put(plan.id, { ...plan, moves, state, updatedAt: now, finishedAt: now, ...(cancelled ? { params: { ...plan.params, cancelRequested: true } } : {}) });
    await this.store.clearPlanCancel(plan.id);
    if (plan.kind === 'evacuate' && plan.hostId) {
      const maintenance = await this.store.maintenance.get(plan.hostId);
      if (maintenance?.planId === plan.id) {
        // a partial evacuation is in once every move it could make completed: its unplaced workloads stay
        if (state === 'completed') await this.store.maintenance.put(plan.hostId, { ...maintenance, state: 'in', since: now });
        else this.log.warn({ hostId: plan.hostId, planId: plan.id, state }, 'evacuation did not empty the host: it stays entering maintenance');
      }
    }
    this.log.info({ planId: plan.id, kind: plan.kind, state, moves: moves.length }, 'plan finished');
    return { planId: plan.id, state };
  }
}
