import type { FlowProducer } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { buildEvacuationPlan, buildRebalancePlan, clusterRevision, compatibility, inMaintenance, modelFromSnapshot, maintenanceGroups, planExpired, type PlacementPolicy } from '@ferry/core';
import {
  DryRunQuery,
  HostParams,
  MaintenanceQuery,
  MaintenanceRequest,
  PlanListQuery,
  PlanParams,
  RebalanceRequest,
  TERMINAL_MIGRATION_STATES,
  WorkloadId,
  HostId,
  type ClusterSnapshotDocument,
  type PlanMove,
  type PlanRecord,
  type PlanUnplaced,
  type MaintenancePreview,
} from '@ferry/protocol';
import { executePlan, expirePlans, recentlyMoved, savePlan, StalePlanError, type ClusterStore } from '@ferry/store';
import { z } from 'zod';
import { ApiError, parseRequest } from '../errors.ts';
import type { ApiMetrics } from '../metrics.ts';

const CompatQuery = z.strictObject({ workload: WorkloadId, host: HostId });

const duration = (ms: number) => (ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`);

/** How many of the workloads that cannot leave a refusal's message names (all of them are in its details). */
const NAMED_IN_MESSAGE = 5;

/** " — s: refused by all 2 hosts …; db-1: it cannot move while being created …; and 3 more (details.unplaced)" */
function stayingList(unplaced: readonly PlanUnplaced[]): string {
  if (unplaced.length === 0) return '';
  const named = unplaced.slice(0, NAMED_IN_MESSAGE).map((u) => `${u.workload}: ${u.reason}`);
  const more = unplaced.length - named.length;
  return ` — ${named.join('; ')}${more > 0 ? `; and ${more} more (details.unplaced)` : ''}`;
}

/** `planTtlMs`: a plan not executed this long after it was made expires (FERRY_PLAN_TTL_MS). */
export function planRoutes(app: FastifyInstance, store: ClusterStore, flows: FlowProducer, keyPrefix: string, policy: PlacementPolicy, metrics: ApiMetrics, planTtlMs: number): void {
  const expiry = `plans not executed within ${duration(planTtlMs)} of being made expire (FERRY_PLAN_TTL_MS)`;
  /** The plan, or a 404 when there is none or it expired (an expired one is deleted on the way). */
  const stored = async (id: string): Promise<PlanRecord> => {
    const plan = await store.plans.get(id);
    if (!plan) throw new ApiError('NOT_FOUND', `no plan ${id}; ${expiry}`, { id });
    if (planExpired(plan, planTtlMs, Date.now())) {
      await store.plans.remove(id);
      throw new ApiError('NOT_FOUND', `plan ${id} expired: ${expiry}. Plan again`, { id, code: 'PLAN_EXPIRED', createdAt: plan.createdAt, ttlMs: planTtlMs });
    }
    return plan;
  };

  /** A plan with the live status of each of its moves. */
  const view = async (plan: PlanRecord): Promise<PlanRecord> => {
    const moves: PlanMove[] = await Promise.all(
      plan.moves.map(async (move) => {
        if (!move.migrationId || move.status === 'failed') return move;
        const m = await store.migrations.get(move.migrationId);
        if (!m) return move;
        const status: PlanMove['status'] =
          m.state === 'queued'
            ? 'pending'
            : TERMINAL_MIGRATION_STATES.has(m.state)
              ? m.state === 'rolled-back' && m.error?.code === 'CANCELLED'
                ? 'cancelled'
                : (m.state as PlanMove['status'])
              : 'running';
        return { ...move, status };
      }),
    );
    // an executing plan's cancel is kept apart from its record until its job ends it
    const cancelling = plan.state === 'executing' && plan.params.cancelRequested !== true && (await store.planCancelRequested(plan.id));
    return { ...plan, moves, ...(cancelling ? { params: { ...plan.params, cancelRequested: true } } : {}) };
  };

  const save = async (draft: Omit<PlanRecord, 'id' | 'createdAt' | 'updatedAt'>) => {
    const plan = await savePlan(store, draft);
    metrics.planMade(plan);
    return plan;
  };

  const execute = async (plan: PlanRecord, options: { fresh?: boolean } = {}): Promise<PlanRecord> => {
    try {
      return await executePlan(store, flows, keyPrefix, plan, options);
    } catch (err) {
      if (err instanceof StalePlanError) throw new ApiError('CONFLICT', err.message, { planned: err.planned, now: err.now });
      throw err;
    }
  };

  app.get('/v1/compat', async (request) => {
    const { workload: id, host } = parseRequest(CompatQuery, request.query, 'query');
    const workload = await store.workloads.get(id);
    if (!workload) throw new ApiError('NOT_FOUND', `no workload ${id}`, { id });
    const reasons = compatibility(workload, host, await store.snapshot(), policy);
    if (reasons.some((r) => r.code === 'HOST_UNKNOWN')) throw new ApiError('NOT_FOUND', `no host ${host}`, { host });
    return { workload: id, host, ok: reasons.length === 0, reasons };
  });

  app.get('/v1/cluster/snapshot', async (): Promise<ClusterSnapshotDocument> => {
    const snapshot = await store.snapshot();
    return { version: 1, takenAt: Date.now(), revision: clusterRevision(snapshot), hosts: snapshot.hosts, workloads: snapshot.workloads, maintenance: snapshot.maintenance ?? [] };
  });

  app.post('/v1/rebalance', async (request, reply) => {
    const { dryRun } = parseRequest(DryRunQuery, request.query, 'query');
    const body = parseRequest(RebalanceRequest, request.body ?? {}, 'body');
    const snapshot = await store.snapshot();
    const plan = await save(
      buildRebalancePlan(snapshot, {
        policy,
        maxMoves: body.maxMoves,
        ...(body.minGain === undefined ? {} : { minGain: body.minGain }),
        ...(body.timeBudgetMs === undefined ? {} : { timeBudgetMs: body.timeBudgetMs }),
        ...(body.moveCost === undefined ? {} : { moveCost: body.moveCost }),
        ...(body.moveCostPerGiB === undefined ? {} : { moveCostPerGiB: body.moveCostPerGiB }),
        ...(body.weights === undefined ? {} : { weights: body.weights }),
        pinned: await recentlyMoved(store, body.cooldownMinutes * 60_000),
        history: await store.measuredMigrations.recent(),
      }),
    );
    // every new plan sweeps the expired ones: dry runs never pile up, even if nobody lists them
    await expirePlans(store, planTtlMs);
    if (dryRun || plan.moves.length === 0) return reply.status(200).send(plan);
    return reply.status(202).send(await execute(plan));
  });

  app.get('/v1/plans', async (request) => {
    const query = parseRequest(PlanListQuery, request.query, 'query');
    await expirePlans(store, planTtlMs);
    // newest first (by the creation time in the id); p-<kind>-<time><rand>
    const page = await store.plans.page(
      { limit: query.limit, after: query.cursor },
      {
        order: 'newest',
        ...(query.kind ? { prefix: `p-${query.kind}-` } : {}),
        keep: query.state || query.kind ? (p) => (!query.state || p.state === query.state) && (!query.kind || p.kind === query.kind) : undefined,
      },
    );
    return { plans: await Promise.all(page.items.map(view)), nextCursor: page.nextCursor };
  });

  app.get('/v1/plans/:id', async (request) => {
    const { id } = parseRequest(PlanParams, request.params, 'params');
    return view(await stored(id));
  });

  app.post('/v1/plans/:id/execute', async (request, reply) => {
    const { id } = parseRequest(PlanParams, request.params, 'params');
    const plan = await stored(id);
    if (plan.state !== 'planned') throw new ApiError('CONFLICT', `plan ${id} is ${plan.state}; only a planned plan can be executed`);
    return reply.status(202).send(await execute(plan));
  });

  /** Discards a planned plan, or cancels the moves of an executing one that have not committed. */
  app.delete('/v1/plans/:id', async (request, reply) => {
    const { id } = parseRequest(PlanParams, request.params, 'params');
    const plan = await store.plans.get(id);
    if (!plan) throw new ApiError('NOT_FOUND', `no plan ${id}`, { id });
    if (plan.state !== 'planned' && plan.state !== 'executing') throw new ApiError('CONFLICT', `plan ${id} already ended (${plan.state})`);
    if (plan.state === 'planned') {
      const cancelled: PlanRecord = { ...plan, state: 'cancelled', params: { ...plan.params, cancelRequested: true }, updatedAt: Date.now() };
      await store.plans.put(id, cancelled);
      return reply.status(202).send(await view(cancelled));
    }
    // Executing: its job starts no further stage, and the moves it started are cancelled. The
    // record stays the plan job's to write (it adds each stage's migrations to it); the cancel is
    // asked first, so a stage starting meanwhile is either seen here or sees the cancel itself.
    await store.requestPlanCancel(id);
    const current = (await store.plans.get(id)) ?? plan;
    for (const move of current.moves) if (move.migrationId) await store.requestCancel(move.migrationId);
    return reply.status(202).send(await view({ ...current, params: { ...current.params, cancelRequested: true } }));
  });

  app.post('/v1/hosts/:id/maintenance', async (request, reply) => {
    const { id } = parseRequest(HostParams, request.params, 'params');
    const { partial, dryRun } = parseRequest(MaintenanceQuery, request.query, 'query');
    const body = parseRequest(MaintenanceRequest, request.body ?? {}, 'body');
    const host = await store.hosts.get(id);
    if (!host) throw new ApiError('NOT_FOUND', `no host ${id}`, { id });
    const snapshot = await store.snapshot();
    if (inMaintenance(snapshot, id)) throw new ApiError('CONFLICT', `host ${id} is already in maintenance`, { maintenance: await store.maintenance.get(id) });
    // all or nothing unless ?partial=true: then what can leave does, and the plan lists the rest
    // a migration asked for but not started yet: the snapshot still shows its workload running here
    const busy = new Map<string, string>();
    for (const w of snapshot.workloads) {
      const migration = w.hostId === id ? await store.activeMigration(w.spec.id) : null;
      if (migration) busy.set(w.spec.id, `migrating (${migration})`);
    }
    const draft = buildEvacuationPlan(snapshot, id, { mode: body.mode, policy, partial: partial === true, busy, history: await store.measuredMigrations.recent() });
    if (!draft.ok)
      throw new ApiError('CONFLICT', `host ${id} cannot be emptied: ${draft.reason}${stayingList(draft.unplaced)}${draft.unplaced.length > 0 && !partial ? ' (?partial=true moves the others)' : ''}`, {
        unplaced: draft.unplaced,
      });
    // what it would do, to be reviewed first: nothing stored, the host stays in placement
    if (dryRun) return reply.status(200).send({ dryRun: true, hostId: id, plan: draft.plan } satisfies MaintenancePreview);
    const now = Date.now();
    // out of placement at once, before a single workload moves
    const plan = await save(draft.plan);
    await store.maintenance.put(id, { hostId: id, state: plan.moves.length === 0 ? 'in' : 'entering', since: now, planId: plan.id, ...(body.reason ? { reason: body.reason } : {}) });
    if (plan.moves.length === 0) return reply.status(200).send({ maintenance: await store.maintenance.get(id), plan });
    // planned a moment ago by this request: nobody reviewed it, so it cannot have gone stale (a
    // revision check here refused maintenance whenever any workload changed in between, and left
    // the host entering maintenance with no plan running)
    let started: PlanRecord;
    try {
      started = await execute(plan, { fresh: true });
    } catch (err) {
      await store.maintenance.remove(id); // nothing moves: the host takes workloads again
      throw err;
    }
    return reply.status(202).send({ maintenance: await store.maintenance.get(id), plan: started });
  });

  app.delete('/v1/hosts/:id/maintenance', async (request) => {
    const { id } = parseRequest(HostParams, request.params, 'params');
    const record = await store.maintenance.get(id);
    if (!record) throw new ApiError('NOT_FOUND', `host ${id} is not in maintenance`, { id });
    if (record.planId && (await store.plans.get(record.planId))?.state === 'executing') {
      // as DELETE /v1/plans/:id does: no further stage, and the started moves cancelled
      await store.requestPlanCancel(record.planId);
      const plan = await store.plans.get(record.planId);
      for (const move of plan?.moves ?? []) if (move.migrationId) await store.requestCancel(move.migrationId);
    }
    await store.maintenance.remove(id);
    return { hostId: id, maintenance: null };
  });

  app.get('/v1/maintenance/groups', async () => {
    const snapshot = await store.snapshot();
    return maintenanceGroups(modelFromSnapshot(snapshot, { policy }));
  });
}
