import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { FlowProducer, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DEFAULT_PLACEMENT_POLICY, type PlacementPolicy } from '@ferry/core';
import { QUEUES, queuePrefix } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { ClusterStore } from '@ferry/store';
import type { ApiConfig } from './config.ts';
import { installBearerAuth } from './auth.ts';
import { installErrorHandlers } from './errors.ts';
import { hostRoutes } from './routes/hosts.ts';
import { systemRoutes } from './routes/system.ts';
import { migrationRoutes } from './routes/migrations.ts';
import { planRoutes } from './routes/plans.ts';
import { workloadRoutes } from './routes/workloads.ts';

export interface ApiServer {
  app: FastifyInstance;
  /** where it listens, e.g. http://127.0.0.1:8080 */
  url: string;
  stop(): Promise<void>;
}

export interface Queues {
  workloads: Queue;
  migrations: Queue;
  flows: FlowProducer;
}

export async function buildApp(config: ApiConfig, redis: Redis, queues: Queues, log: Logger): Promise<FastifyInstance> {
  // Typed as Fastify's base logger so route modules take a plain FastifyInstance.
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    // Request lines at debug level (below) instead of Fastify's two info lines per request.
    logController: new LogController({ disableRequestLogging: true }),
  });
  const store = new ClusterStore(redis, config.keyPrefix, log);
  installErrorHandlers(app);
  installBearerAuth(app, config.token, ['/healthz']);
  systemRoutes(app, store);
  hostRoutes(app, store);
  const policy: PlacementPolicy = { ...DEFAULT_PLACEMENT_POLICY, haAdmission: config.haAdmission, ...(config.cpuBaseline ? { cpuBaseline: config.cpuBaseline } : {}) };
  workloadRoutes(app, store, queues.workloads, policy);
  migrationRoutes(app, store, queues.migrations, policy);
  planRoutes(app, store, queues.flows, config.keyPrefix, policy);
  app.addHook('onResponse', async (request, reply) => {
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode }, 'request');
  });
  await app.ready();
  return app;
}

export async function startApi(config: ApiConfig, log: Logger): Promise<ApiServer> {
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2, lazyConnect: true });
  redis.on('error', (err) => log.error({ err: err.message }, 'Redis error'));
  await redis.connect();
  const queues: Queues = {
    workloads: new Queue(QUEUES.workloads, { connection: redis, prefix: queuePrefix(config.keyPrefix) }),
    migrations: new Queue(QUEUES.migrations, { connection: redis, prefix: queuePrefix(config.keyPrefix) }),
    flows: new FlowProducer({ connection: redis, prefix: queuePrefix(config.keyPrefix) }),
  };
  const app = await buildApp(config, redis, queues, log);
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `http://${config.host}:${port}`;
  log.info({ url }, 'API listening');
  return {
    app,
    url,
    async stop() {
      await app.close();
      await Promise.all([queues.workloads.close(), queues.migrations.close(), queues.flows.close()]);
      redis.disconnect();
    },
  };
}
