import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { moveToPredict, newMigrationRecord, planMigration, predictMove, type PlacementPolicy } from '@ferry/core';
import {
  MigrateQuery,
  MigrateRequest,
  MigrationListQuery,
  MigrationParams,
  TERMINAL_MIGRATION_STATES,
  WorkloadParams,
  newMigrationId,
  type MigrationDryRun,
  type MigrationJobData,
  type MigrationListResponse,
  type MigrationRecord,
} from '@ferry/protocol';
import type { ClusterStore } from '@ferry/store';
import { ApiError, parseRequest } from '../errors.ts';
import type { ClusterView } from '../cluster-view.ts';

const JOB_OPTIONS = {
  // A retry resumes from the recorded phase; past the commit it only finishes the cleanup.
  attempts: 6,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 7 * 24 * 3600 },
  removeOnFail: { age: 30 * 24 * 3600 },
} as const;

export function migrationRoutes(app: FastifyInstance, store: ClusterStore, cluster: ClusterView, queue: Queue, policy: PlacementPolicy): void {
  const view = async (record: MigrationRecord) => ({ ...record, cancelRequested: record.cancelRequested || (await store.cancelRequested(record.id)) });

  app.post('/v1/workloads/:id/migrate', async (request, reply) => {
    const { id } = parseRequest(WorkloadParams, request.params, 'params');
    const body = parseRequest(MigrateRequest, request.body ?? {}, 'body');
    const { dryRun } = parseRequest(MigrateQuery, request.query, 'query');
    const workload = await store.workloads.get(id);
    if (!workload) throw new ApiError('NOT_FOUND', `no workload ${id}`, { id });
    const active = await store.activeMigration(id);
    if (active) throw new ApiError('CONFLICT', `workload ${id} is already migrating (${active})`, { migrationId: active });
    const snapshot = await cluster.snapshot([workload.hostId, body.destination]);
    const plan = planMigration(workload, snapshot, body, policy);
    if (!plan.ok) throw new ApiError(plan.code, plan.message, { problems: plan.problems });
    const predicted = predictMove(moveToPredict(snapshot, workload, plan.destination, plan.strategy), await store.measuredMigrations.recent());
    if (dryRun) {
      const answer: MigrationDryRun = { dryRun: true, workloadId: id, source: workload.hostId, ...plan, predicted };
      return answer;
    }

    const record: MigrationRecord = { ...newMigrationRecord(newMigrationId(id), workload, { ...plan, requested: { mode: body.mode, strategy: body.strategy ?? null } }, Date.now()), predicted };
    const other = await store.beginMigration(record);
    if (other) throw new ApiError('CONFLICT', `workload ${id} is already migrating (${other})`, { migrationId: other });
    const data: MigrationJobData = { migrationId: record.id };
    await queue.add('migrate', data, { ...JOB_OPTIONS, jobId: record.id });
    return reply.status(202).send({ migration: record, job: { id: record.id, name: 'migrate' } });
  });

  /** Newest first (by the creation time in the id). */
  app.get('/v1/migrations', async (request): Promise<MigrationListResponse> => {
    const query = parseRequest(MigrationListQuery, request.query, 'query');
    const page = await store.migrations.page(
      { limit: query.limit, after: query.cursor },
      {
        order: 'newest',
        // ids are m-<workload>-<time><rand>: a workload's migrations share a prefix (checked after)
        ...(query.workload ? { prefix: `m-${query.workload}-` } : {}),
        keep: query.workload || query.state ? (m) => (!query.workload || m.workloadId === query.workload) && (!query.state || m.state === query.state) : undefined,
      },
    );
    return { migrations: await Promise.all(page.items.map(view)), nextCursor: page.nextCursor };
  });

  app.get('/v1/migrations/:id', async (request) => {
    const { id } = parseRequest(MigrationParams, request.params, 'params');
    const record = await store.migrations.get(id);
    if (!record) throw new ApiError('NOT_FOUND', `no migration ${id}`, { id });
    return view(record);
  });

  /** Cancel: honoured at the next check before the commit; after it, the migration completes. */
  app.delete('/v1/migrations/:id', async (request, reply) => {
    const { id } = parseRequest(MigrationParams, request.params, 'params');
    const record = await store.migrations.get(id);
    if (!record) throw new ApiError('NOT_FOUND', `no migration ${id}`, { id });
    if (TERMINAL_MIGRATION_STATES.has(record.state)) throw new ApiError('CONFLICT', `migration ${id} already ended (${record.state})`);
    if (record.completed.includes('commit') || record.phase === 'commit') {
      throw new ApiError('CONFLICT', `migration ${id} is committed: the workload already runs on ${record.destination}; it cannot go back`);
    }
    await store.requestCancel(id);
    // requested, whatever the set says a moment later: a runner that saw it at once may already
    // have rolled back and cleared it (CI: a cancel of a migration still in validate)
    return reply.status(202).send({ ...record, cancelRequested: true });
  });
}
