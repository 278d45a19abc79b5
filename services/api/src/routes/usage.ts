import type { FastifyInstance } from 'fastify';
import { HostParams, USAGE_SAMPLE_MS, WorkloadParams, type HostUsageResponse, type WorkloadUsageResponse } from '@ferry/protocol';
import type { ClusterStore } from '@ferry/store';
import { ApiError, parseRequest } from '../errors.ts';
import { hostsOfTheHour, mergeSeries, type UsageAsker } from '../usage.ts';

/** a workload's migrations read for its hour (newest first): far more than an hour holds */
const MIGRATIONS_READ = 50;

/** The console's usage charts: a host's hour, a workload's hour across the hosts it ran on (usage.ts). */
export function usageRoutes(app: FastifyInstance, store: ClusterStore, usage: UsageAsker): void {
  app.get('/v1/hosts/:id/usage', async (request): Promise<HostUsageResponse> => {
    const { id } = parseRequest(HostParams, request.params, 'params');
    if (!(await store.hosts.get(id))) throw new ApiError('NOT_FOUND', `no host ${id}`, { id });
    const asked = await usage.ask(id);
    return asked.ok
      ? { hostId: id, sampleMs: asked.reply.sampleMs, samples: asked.reply.host, unavailable: null }
      : { hostId: id, sampleMs: USAGE_SAMPLE_MS, samples: [], unavailable: asked.unavailable };
  });

  app.get('/v1/workloads/:id/usage', async (request): Promise<WorkloadUsageResponse> => {
    const { id } = parseRequest(WorkloadParams, request.params, 'params');
    const workload = await store.workloads.get(id);
    if (!workload) throw new ApiError('NOT_FOUND', `no workload ${id}`, { id });
    const migrations = await store.migrations.page({ limit: MIGRATIONS_READ }, { order: 'newest', prefix: `m-${id}-`, keep: (m) => m.workloadId === id });
    const hosts = hostsOfTheHour(workload.hostId, migrations.items, Date.now());
    const answers = await Promise.all(hosts.map(async (hostId) => ({ hostId, asked: await usage.ask(hostId, id) })));
    const replies = answers.flatMap(({ asked }) => (asked.ok ? [asked.reply] : []));
    return {
      workloadId: id,
      sampleMs: replies[0]?.sampleMs ?? USAGE_SAMPLE_MS,
      samples: mergeSeries(answers.flatMap(({ hostId, asked }) => (asked.ok && asked.reply.workload ? [{ hostId, samples: asked.reply.workload }] : []))),
      hosts: answers.map(({ hostId, asked }) => ({ hostId, unavailable: asked.ok ? null : asked.unavailable })),
    };
  });
}
