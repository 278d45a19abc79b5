import type { FastifyInstance } from 'fastify';
import type { StatsResponse } from '@ferry/protocol';
import type { ClusterStore } from '@ferry/store';

export function systemRoutes(app: FastifyInstance, store: ClusterStore): void {
  /** Open (no token): for load balancers and supervisors. */
  app.get('/healthz', async (_request, reply) => {
    const redis = await store.ping();
    return reply.status(redis ? 200 : 503).send({ status: redis ? 'ok' : 'degraded', redis });
  });

  app.get('/v1/stats', async (): Promise<StatsResponse> => ({ capacityReports: await store.capacityStats() }));
}
