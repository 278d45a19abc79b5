import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { haAdmissionForStart, resumeTarget, validateWorkloadRequest, workloadWarnings, type PlacementPolicy } from '@ferry/core';
import {
  CreateWorkloadQuery,
  JobParams,
  ResumeWorkloadBody,
  StopWorkloadQuery,
  WorkloadListQuery,
  WorkloadParams,
  matchesLabels,
  newJobId,
  type HostRecord,
  type JobView,
  type WorkloadAccepted,
  type WorkloadCreated,
  type WorkloadJobData,
  type WorkloadJobName,
  type WorkloadListResponse,
  type WorkloadRecord,
  type WorkloadView,
} from '@ferry/protocol';
import type { ClusterStore } from '@ferry/store';
import { ApiError, parseRequest } from '../errors.ts';
import type { ApiMetrics } from '../metrics.ts';
import { AdmissionBatches, type ClusterView } from '../cluster-view.ts';

const JOB_OPTIONS = {
  attempts: 4,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 24 * 3600, count: 5000 },
  removeOnFail: { age: 7 * 24 * 3600 },
} as const;

const SUSPEND_PHASES: ReadonlySet<string> = new Set(['suspending', 'suspended', 'resuming']);

function view(record: WorkloadRecord, hosts: Map<string, HostRecord>): WorkloadView {
  const host = record.hostId ? hosts.get(record.hostId) : undefined;
  const observed = host?.capacity.containers.find((c) => c.id === record.spec.id) ?? null;
  return { ...record, observed };
}

export function workloadRoutes(app: FastifyInstance, store: ClusterStore, cluster: ClusterView, queue: Queue, policy: PlacementPolicy, metrics: ApiMetrics): void {
  /** the one host a workload's view needs (never every host: each is a record rewritten every second) */
  const hostMap = async (record: WorkloadRecord) => {
    const host = record.hostId ? await store.hosts.get(record.hostId) : null;
    return new Map(host ? [[host.id, host]] : []);
  };
  const admission = new AdmissionBatches(cluster, policy);

  const enqueue = async (record: WorkloadRecord, name: WorkloadJobName, extra: Partial<WorkloadJobData> = {}): Promise<WorkloadAccepted> => {
    const id = newJobId(record.spec.id, name);
    const data: WorkloadJobData = { workloadId: record.spec.id, requestedAt: Date.now(), ...extra };
    await queue.add(name, data, { ...JOB_OPTIONS, jobId: id });
    return { workload: view(record, await hostMap(record)), job: { id, name } };
  };

  const existing = async (params: unknown): Promise<WorkloadRecord> => {
    const { id } = parseRequest(WorkloadParams, params, 'params');
    const record = await store.workloads.get(id);
    if (!record) throw new ApiError('NOT_FOUND', `no workload ${id}`, { id });
    return record;
  };

  app.post('/v1/workloads', async (request, reply) => {
    const query = parseRequest(CreateWorkloadQuery, request.query, 'query');
    const checks = await cluster.forValidation();
    const validation = validateWorkloadRequest(request.body, checks);
    if (!validation.ok) {
      const summary = validation.problems.map((p) => `${p.field}: ${p.message}`).join('; ');
      throw new ApiError('BAD_REQUEST', `${validation.problems.length} problem(s) with this workload: ${summary}`, { problems: validation.problems });
    }
    const { spec } = validation;
    // Admission control answers now, not in a failed job later: hosts could take it, but none
    // without leaving the cluster unable to absorb one host's failure. (The scheduler checks
    // again when it places it, against the cluster as it is then.)
    if (policy.haAdmission && query.start !== false) {
      const placed = await admission.check(spec);
      if (!placed.ok && placed.refused.HA_ADMISSION) {
        const refusals = placed.refusals.filter((r) => r.code === 'HA_ADMISSION');
        metrics.admissionRefusals.inc();
        throw new ApiError('CONFLICT', `HA admission control refuses ${spec.id}: ${refusals[0]!.message}`, { code: 'HA_ADMISSION', refusals });
      }
    }
    const now = Date.now();
    const record: WorkloadRecord = {
      spec,
      hostId: null,
      epoch: 1,
      desired: query.start === false ? 'stopped' : 'running',
      phase: 'pending',
      placement: null,
      lastExit: null,
      error: null,
      lastJob: null,
      migratingTo: null,
      cpu: null,
      createdAt: now,
      updatedAt: now,
    };
    if (!(await store.workloads.insert(spec.id, record))) {
      const problem = { field: 'id', code: 'DUPLICATE_ID', message: `a workload named ${spec.id} already exists` };
      throw new ApiError('BAD_REQUEST', `1 problem(s) with this workload: id: ${problem.message}`, { problems: [problem] });
    }
    const created: WorkloadCreated = { ...(await enqueue(record, 'create')), warnings: workloadWarnings(spec, checks) };
    return reply.status(202).send(created);
  });

  /**
   * One page by id, filtered on the records themselves; only the page's own workloads are then
   * joined with the hosts they are on (a filter examining thousands of records reads no host for
   * those it drops). `?host=` reads the ids from the workloads' index by host (one host's
   * workloads, never the whole hash): a workload is under the host its record names (`hostId`),
   * so one migrating to H is listed under its source until the move commits.
   */
  app.get('/v1/workloads', async (request): Promise<WorkloadListResponse> => {
    const query = parseRequest(WorkloadListQuery, request.query, 'query');
    const filtered = query.host || query.phase || query.label || query.template;
    const page = await store.workloads.page(
      { limit: query.limit, after: query.cursor },
      {
        ...(query.search ? { prefix: query.search } : {}),
        ...(query.host ? { indexed: query.host } : {}),
        // the host is checked again on the record read: the index only narrows what is read
        keep: filtered
          ? (w) =>
              (!query.host || w.hostId === query.host) &&
              (!query.phase || w.phase === query.phase) &&
              (!query.template || w.spec.template === query.template) &&
              (!query.label || matchesLabels(w.spec.labels, query.label))
          : undefined,
      },
    );
    const hostIds = [...new Set(page.items.flatMap((w) => (w.hostId ? [w.hostId] : [])))];
    const hosts = new Map((await store.hosts.getMany(hostIds)).flatMap((h) => (h ? [[h.id, h] as const] : [])));
    return { workloads: page.items.map((w) => view(w, hosts)), nextCursor: page.nextCursor };
  });

  app.get('/v1/workloads/:id', async (request) => {
    const record = await existing(request.params);
    return view(record, await hostMap(record));
  });

  /** start and stop act on a workload that holds a host: a suspended one is resumed (or deleted) instead */
  const notSuspended = (record: WorkloadRecord, what: string) => {
    if (SUSPEND_PHASES.has(record.phase)) {
      throw new ApiError('CONFLICT', `${record.spec.id} is ${record.phase}: it cannot be ${what} (resume it, or delete it)`, { code: 'SUSPENDED', phase: record.phase });
    }
  };

  app.post('/v1/workloads/:id/suspend', async (request, reply) => {
    const record = await existing(request.params);
    if (record.phase !== 'running' || record.migratingTo !== null) {
      throw new ApiError('CONFLICT', `${record.spec.id} is ${record.migratingTo ? 'migrating' : record.phase}: only a running workload can be suspended`, { code: 'NOT_RUNNING', phase: record.phase });
    }
    return reply.status(202).send(await enqueue(record, 'suspend'));
  });

  app.post('/v1/workloads/:id/resume', async (request, reply) => {
    const record = await existing(request.params);
    const body = parseRequest(ResumeWorkloadBody, request.body ?? {}, 'body');
    // answered now with every reason, as a migration is; the scheduler decides again when it runs
    const target = resumeTarget(record, await cluster.snapshot(), policy, body.host);
    if (!target.ok) {
      if (target.code === 'HOST_UNKNOWN') throw new ApiError('NOT_FOUND', target.message, { host: body.host });
      throw new ApiError('CONFLICT', target.message, { code: target.code, phase: record.phase, refusals: target.refusals });
    }
    return reply.status(202).send(await enqueue(record, 'resume', body.host ? { host: body.host } : {}));
  });

  app.post('/v1/workloads/:id/start', async (request, reply) => {
    const record = await existing(request.params);
    notSuspended(record, 'started');
    const problem = haAdmissionForStart(record, await cluster.snapshot(), policy);
    if (problem) {
      metrics.admissionRefusals.inc();
      throw new ApiError('CONFLICT', `HA admission control refuses to start ${record.spec.id}: ${problem}`, { code: 'HA_ADMISSION' });
    }
    return reply.status(202).send(await enqueue(record, 'start'));
  });

  app.post('/v1/workloads/:id/stop', async (request, reply) => {
    const record = await existing(request.params);
    const { graceMs } = parseRequest(StopWorkloadQuery, request.query, 'query');
    notSuspended(record, 'stopped');
    return reply.status(202).send(await enqueue(record, 'stop', graceMs === undefined ? {} : { graceMs }));
  });

  app.delete('/v1/workloads/:id', async (request, reply) => reply.status(202).send(await enqueue(await existing(request.params), 'destroy')));

  app.get('/v1/jobs/:id', async (request): Promise<JobView> => {
    const { id } = parseRequest(JobParams, request.params, 'params');
    const job = await queue.getJob(id);
    if (!job) throw new ApiError('NOT_FOUND', `no job ${id}`, { id });
    return {
      id,
      name: job.name as JobView['name'],
      state: await job.getState(),
      progress: job.progress,
      attemptsMade: job.attemptsMade,
      failedReason: job.failedReason ?? null,
      result: job.returnvalue ?? null,
      data: job.data,
      createdAt: job.timestamp ?? null,
      finishedAt: job.finishedOn ?? null,
    };
  });
}
