import type { FlowProducer } from 'bullmq';
import { clusterRevision, moveToPredict, newMigrationRecord, nextPlanStep, planExpired, predictMove, type ClusterSnapshot } from '@ferry/core';
import { QUEUES, newMigrationId, newPlanId, queuePrefix, type MigrationJobData, type MigrationRecord, type PlanJobData, type PlanMove, type PlanRecord } from '@ferry/protocol';
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
export const MIGRATION_JOB = {
  attempts: 6,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 7 * 24 * 3600 },
  removeOnFail: { age: 30 * 24 * 3600 },
  // the plan's parent job runs when every move ended, however it ended
  ignoreDependencyOnFailure: true,
} as const;

/** The plan's own job: it runs again, from what the plan record says, when a step of it failed (a Redis hiccup). */
const PLAN_JOB = { attempts: 5, backoff: { type: 'exponential', delay: 1000 } } as const;

/** A migration job of a plan: a child of the plan's job. */
export interface PlanMigrationJob {
  name: 'migrate';
  queueName: string;
  data: MigrationJobData;
  opts: typeof MIGRATION_JOB & { jobId: string };
}

/**
 * Starts the moves at `indices` of an executing plan: registers one migration per move (a
 * workload no longer where the plan found it, or already migrating, fails its move at once) and
 * returns the plan's moves as they are now with the migration jobs to queue. Idempotent: a move
 * whose migration this plan already registered (a plan job run again) gets that one back.
 */
export async function startPlanMoves(
  store: ClusterStore,
  plan: Pick<PlanRecord, 'id' | 'moves'>,
  indices: readonly number[],
  snapshot: ClusterSnapshot,
): Promise<{ moves: PlanMove[]; jobs: PlanMigrationJob[] }> {
  const now = Date.now();
  const moves = [...plan.moves];
  const jobs: PlanMigrationJob[] = [];
  const history = indices.length > 0 ? await store.measuredMigrations.recent() : [];
  const job = (migrationId: string): PlanMigrationJob => ({ name: 'migrate', queueName: QUEUES.migrations, data: { migrationId }, opts: { ...MIGRATION_JOB, jobId: migrationId } });
  for (const i of indices) {
    const move = moves[i]!;
    const workload = snapshot.workloads.find((w) => w.spec.id === move.workload);
    if (!workload || workload.hostId !== move.from) {
      moves[i] = { ...move, status: 'failed', reason: `${move.reason}; not started: the workload is not on ${move.from}` };
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
      const theirs = await store.migrations.get(other);
      if (theirs && theirs.destinationReason.startsWith(`plan ${plan.id}: `) && theirs.destination === move.to) {
        // registered by an earlier run of this very step
        jobs.push(job(theirs.id));
        moves[i] = { ...move, migrationId: theirs.id };
        continue;
      }
      moves[i] = { ...move, status: 'failed', reason: `${move.reason}; not started: already migrating (${other})` };
      continue;
    }
    jobs.push(job(record.id));
    moves[i] = { ...move, migrationId: record.id };
  }
  return { moves, jobs };
}

/**
 * Starts a plan: refuses it if the cluster moved on since it was computed, starts its first stage
 * (startPlanMoves), and hands it to BullMQ as a flow — a parent job for the plan, a child
 * migration job per move of that stage. The plan's job starts each later stage once the one
 * before ended (the scheduler's PlanWorker, nextPlanStep). Returns the plan as stored.
 */
export async function executePlan(store: ClusterStore, flows: FlowProducer, keyPrefix: string, plan: PlanRecord, options: { fresh?: boolean } = {}): Promise<PlanRecord> {
  const snapshot = await store.snapshot();
  // `fresh`: made in this same request from the cluster as it is (maintenance) — no plan someone
  // reviewed can have gone stale, and a workload that changed meanwhile (a migration's progress)
  // would refuse it for nothing; each move's migration checks its own hosts anyway
  const revision = clusterRevision(snapshot);
  if (!options.fresh && revision !== plan.revision) throw new StalePlanError(plan.revision, revision);
  const first = nextPlanStep(plan.moves, false);
  const { moves, jobs } = await startPlanMoves(store, plan, first.start, snapshot);
  const started: PlanRecord = { ...plan, state: 'executing', moves, updatedAt: Date.now() };
  await store.plans.put(plan.id, started);
  const data: PlanJobData = { planId: plan.id };
  const prefix = queuePrefix(keyPrefix);
  await flows.add({ name: 'plan', queueName: QUEUES.plans, data, opts: { jobId: plan.id, ...PLAN_JOB }, prefix, children: jobs.map((c) => ({ ...c, prefix })) });
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
