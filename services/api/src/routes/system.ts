import type { FastifyInstance } from 'fastify';
import type { StatsResponse } from '@ferry/protocol';
import type { ClusterStore } from '@ferry/store';
import { REDIS_UNAVAILABLE_MESSAGE } from '../errors.ts';

export function systemRoutes(app: FastifyInstance, store: ClusterStore): void {
  /** Open (no token): for load balancers and supervisors. */
  app.get('/healthz', async (_request, reply) => {
    const redis = await store.ping();
    if (redis) return reply.status(200).send({ status: 'ok', redis });
    return reply.status(503).send({ status: 'degraded', redis, message: REDIS_UNAVAILABLE_MESSAGE });
  });

  app.get('/v1/stats', async (): Promise<StatsResponse> => ({ capacityReports: await store.capacityStats() }));
}
