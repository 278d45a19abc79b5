import type { FlowProducer } from 'bullmq';
import { clusterRevision, moveToPredict, newMigrationRecord, planExpired, predictMove } from '@ferry/core';
import { QUEUES, newMigrationId, newPlanId, queuePrefix, type MigrationJobData, type MigrationRecord, type PlanJobData, type PlanRecord } from '@ferry/protocol';
import type { ClusterStore } from './cluster-store.ts';

export class StalePlanError extends Error {
  constructor(
    readonly planned: string,
    readonly now: string,
  ) {
    super(`the cluster changed since this plan was computed (revision ${planned}, now ${now}): plan again`);
    this.name = 'StalePlanError';
  }
}

/** Options of every migration job a plan starts (as a single migration has). */
const MIGRATION_JOB = {
  attempts: 6,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 7 * 24 * 3600 },
  removeOnFail: { age: 30 * 24 * 3600 },
  // the plan's parent job runs when every move ended, however it ended
  ignoreDependencyOnFailure: true,
} as const;

/**
 * Starts a plan: refuses it if the cluster moved on since it was computed, registers one migration
 * per move (a workload already migrating makes its move fail at once), and hands them to BullMQ as
 * a flow — a parent job for the plan, a child migration job per move. Returns the plan as stored.
 */
export async function executePlan(store: ClusterStore, flows: FlowProducer, keyPrefix: string, plan: PlanRecord): Promise<PlanRecord> {
  const snapshot = await store.snapshot();
  const revision = clusterRevision(snapshot);
  if (revision !== plan.revision) throw new StalePlanError(plan.revision, revision);
  const now = Date.now();
  const children: Array<{ name: string; queueName: string; data: MigrationJobData; opts: Record<string, unknown> }> = [];
  const moves = [];
  const history = await store.measuredMigrations.recent();
  for (const move of plan.moves) {
    const workload = snapshot.workloads.find((w) => w.spec.id === move.workload);
    if (!workload || workload.hostId !== move.from) {
      moves.push({ ...move, status: 'failed' as const, reason: `${move.reason}; not started: the workload is not on ${move.from}` });
      continue;
    }
    const record: MigrationRecord = {
      ...newMigrationRecord(
        newMigrationId(move.workload),
        workload,
        {
          destination: move.to,
          destinationReason: `plan ${plan.id}: ${move.reason}`,
          strategy: move.strategy,
          strategyReason: `chosen when plan ${plan.id} was made`,
          requested: { mode: 'auto', strategy: null },
        },
        now,
      ),
      predicted: predictMove(moveToPredict(snapshot, workload, move.to, move.strategy), history),
    };
    const other = await store.beginMigration(record);
    if (other) {
      moves.push({ ...move, status: 'failed' as const, reason: `${move.reason}; not started: already migrating (${other})` });
      continue;
    }
    children.push({ name: 'migrate', queueName: QUEUES.migrations, data: { migrationId: record.id }, opts: { ...MIGRATION_JOB, jobId: record.id } });
    moves.push({ ...move, migrationId: record.id });
  }
  const started: PlanRecord = { ...plan, state: 'executing', moves, updatedAt: now };
  await store.plans.put(plan.id, started);
  const data: PlanJobData = { planId: plan.id };
  await flows.add({ name: 'plan', queueName: QUEUES.plans, data, opts: { jobId: plan.id }, prefix: queuePrefix(keyPrefix), children: children.map((c) => ({ ...c, prefix: queuePrefix(keyPrefix) })) });
  return started;
}

/** Stores a freshly computed plan under a new id. */
export async function savePlan(store: ClusterStore, draft: Omit<PlanRecord, 'id' | 'createdAt' | 'updatedAt'>): Promise<PlanRecord> {
  const now = Date.now();
  const plan: PlanRecord = { ...draft, id: newPlanId(draft.kind), createdAt: now, updatedAt: now };
  await store.plans.put(plan.id, plan);
  return plan;
}

/**
 * Deletes the plans that expired (never executed within `ttlMs`: dry runs, mostly) and returns
 * their ids. Idempotent, so any API replica may sweep. An expired plan can no longer be executed
 * (the API refuses it), so none turns into an executing plan while it is being deleted.
 */
export async function expirePlans(store: ClusterStore, ttlMs: number, now = Date.now()): Promise<string[]> {
  const expired = (await store.plans.all()).filter((p) => planExpired(p, ttlMs, now)).map((p) => p.id);
  for (const id of expired) await store.plans.remove(id);
  return expired;
}

/** Workloads that completed a migration less than `cooldownMs` ago: planners leave them where they are. */
export async function recentlyMoved(store: ClusterStore, cooldownMs: number): Promise<Set<string>> {
  const now = Date.now();
  return new Set((await store.migrations.all()).filter((m) => m.state === 'completed' && m.finishedAt !== null && now - m.finishedAt < cooldownMs).map((m) => m.workloadId));
}
