import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { FlowProducer, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { placementPolicy, type PlacementPolicy } from '@ferry/core';
import { QUEUES, queuePrefix } from '@ferry/protocol';
import { readFileSync } from 'node:fs';
import { readSecretFile, redisConnectionOptions, type Logger } from '@ferry/runtime';
import { ControlPlaneSecrets } from '@ferry/security';
import { AuditLog, ClusterStore, JoinTokenStore, TokenStore } from '@ferry/store';
import type { ApiConfig } from './config.ts';
import { accessGaps, installAccessControl } from './auth.ts';
import { installErrorHandlers, installJsonParser } from './errors.ts';
import { hostRoutes } from './routes/hosts.ts';
import { hostRemovalRoutes } from './routes/host-removal.ts';
import { systemRoutes } from './routes/system.ts';
import { migrationRoutes } from './routes/migrations.ts';
import { planRoutes } from './routes/plans.ts';
import { workloadRoutes } from './routes/workloads.ts';
import { eventRoutes } from './routes/events.ts';
import { uiRoutes } from './routes/ui.ts';
import { accessRoutes } from './routes/access.ts';
import { whoamiRoutes } from './routes/whoami.ts';
import { usageRoutes } from './routes/usage.ts';
import { UsageAsker } from './usage.ts';
import { operateRoutes } from './routes/operate.ts';
import { AgentLink, ConsoleTickets } from './operate.ts';
import { installConsoleSocket } from './console-socket.ts';
import { logRoutes } from './routes/logs.ts';
import { LogsAsker } from './logs.ts';
import { joinRoutes, type HostAdmission } from './routes/join.ts';
import { EventHub } from './events.ts';
import { ApiMetrics } from './metrics.ts';
import { routeDrift } from './openapi.ts';
import { ClusterView } from './cluster-view.ts';
import { connectNats, natsSettingsOf } from '@ferry/runtime';
import type { NatsConnection } from 'nats';

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

const API_VERSION = '0.1.0';

export interface AppOptions {
  /** filled with every route as it is added (for tests) */
  served?: Array<{ method: string; url: string }>;
  /** what asks agents for their usage history (the console's charts); without it, none is available */
  usage?: UsageAsker;
  /** how exec and console reach agents; without it they answer 503 */
  nats?: NatsConnection | null;
  /** what asks agents for workloads' console logs; without it, none can be read */
  logs?: LogsAsker;
}

/**
 * Errors Fastify's router answers before any hook or the error handler (a malformed
 * percent-encoding in the path, a path parameter over maxParamLength): in the API's own shape,
 * `{code, message, details}`, not Fastify's `{error, code: FST_ERR_…, statusCode}`, and without
 * echoing the whole URL back. (Found by the live fuzz, test/api-fuzz.test.ts.)
 */
function frameworkErrors(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
  const message =
    error.code === 'FST_ERR_BAD_URL'
      ? 'the URL is not valid: a malformed percent-encoding (% must be followed by two hex digits of valid UTF-8)'
      : error.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? 'a path parameter is too long (at most 100 characters)'
        : error.message.slice(0, 200);
  void reply.status(status).send({ code: 'BAD_REQUEST', message, details: { fastifyCode: error.code } });
}

export async function buildApp(config: ApiConfig, redis: Redis, queues: Queues, hub: EventHub, metrics: ApiMetrics, log: Logger, options: AppOptions = {}): Promise<FastifyInstance> {
  // Typed as Fastify's base logger so route modules take a plain FastifyInstance.
  const app = Fastify({
    // HTTPS with the cluster CA's certificate (required off loopback: see ApiConfig)
    ...(config.tlsCertFile && config.tlsKeyFile ? { https: { cert: readFileSync(config.tlsCertFile), key: readFileSync(config.tlsKeyFile) } } : {}),
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    // Request lines at debug level (below) instead of Fastify's two info lines per request.
    logController: new LogController({ disableRequestLogging: true }),
    frameworkErrors,
  });
  const store = new ClusterStore(redis, config.keyPrefix, log);
  const tokens = new TokenStore(redis, config.keyPrefix, log);
  const audit = new AuditLog(redis, config.keyPrefix, log);
  const served: Array<{ method: string; url: string }> = options.served ?? [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) served.push({ method, url: route.url });
  });
  installErrorHandlers(app);
  installJsonParser(app);
  // who may do what: the access column of OPERATIONS (openapi.ts); every mutating request audited
  const bootstrapToken = config.token ?? readSecretFile(config.tokenFile!, 'API token');
  installAccessControl(app, { bootstrapToken, tokens, audit, log, onAuditFailure: () => metrics.auditFailures.inc() });
  // with the control plane's directory this API admits joining hosts and revokes removed ones
  const admission: HostAdmission | null = config.controlDir ? { secrets: ControlPlaneSecrets.open(config.controlDir), natsUrl: config.natsAdvertiseUrl ?? config.natsUrl } : null;
  systemRoutes(app, store);
  app.get('/metrics', async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  eventRoutes(app, hub);
  uiRoutes(app, API_VERSION);
  hostRoutes(app, store);
  hostRemovalRoutes(app, store, admission);
  // the scheduler's policy too (placementMode included): what the API plans is what it would do
  const policy: PlacementPolicy = placementPolicy(config);
  // one copy of the cluster for the checks of creates, starts and migrations (cluster-view.ts)
  const cluster = new ClusterView(store);
  // a host changing state (up, suspect, down) is read again at once, not up to a second later
  hub.listen((event) => {
    if (event.type === 'host.state') cluster.forgetHosts();
  });
  workloadRoutes(app, store, cluster, queues.workloads, policy, metrics);
  migrationRoutes(app, store, cluster, queues.migrations, policy);
  planRoutes(app, store, queues.flows, config.keyPrefix, policy, metrics, config.planTtlMs);
  accessRoutes(app, tokens, audit);
  whoamiRoutes(app);
  usageRoutes(app, store, options.usage ?? new UsageAsker(null));
  // exec and console (operator role): agents asked over NATS; the console's WebSocket beside the routes
  const agents = new AgentLink(options.nats ?? null);
  const consoleTickets = new ConsoleTickets(redis, config.keyPrefix);
  operateRoutes(app, store, agents, consoleTickets);
  installConsoleSocket(app, agents, consoleTickets, log.child({ part: 'console' }));
  logRoutes(app, store, options.logs ?? new LogsAsker(null));
  joinRoutes(app, store, new JoinTokenStore(redis, config.keyPrefix, log), admission);
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.requestSeconds.observe({ route }, reply.elapsedTime / 1000);
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode }, 'request');
  });
  await app.ready();
  const drift = routeDrift(served);
  if (drift.length > 0) throw new Error(`the OpenAPI document does not match the routes:\n  ${drift.join('\n  ')}`);
  const gaps = accessGaps(served);
  if (gaps.length > 0) throw new Error(`routes without an access rule (OPERATIONS in openapi.ts):\n  ${gaps.join('\n  ')}`);
  return app;
}

export async function startApi(config: ApiConfig, log: Logger): Promise<ApiServer> {
  // While Redis is away (restarting, down) a request fails after two reconnection attempts at most
  // ~0.5 s apart — a 503 UNAVAILABLE within about a second (errors.ts), not a request hanging on.
  // Behind Sentinel (redisSentinels) the same holds during a failover: 503 until the Sentinels
  // name the new primary, then the connection is there again.
  const redis = new Redis({ ...redisConnectionOptions(config), maxRetriesPerRequest: 2, retryStrategy: (times) => Math.min(times * 100, 500), lazyConnect: true });
  redis.on('error', (err) => log.error({ err: err.message }, 'Redis error'));
  await redis.connect();
  const queues: Queues = {
    workloads: new Queue(QUEUES.workloads, { connection: redis, prefix: queuePrefix(config.keyPrefix) }),
    migrations: new Queue(QUEUES.migrations, { connection: redis, prefix: queuePrefix(config.keyPrefix) }),
    flows: new FlowProducer({ connection: redis, prefix: queuePrefix(config.keyPrefix) }),
  };
  const nc: NatsConnection = await connectNats(natsSettingsOf(config, 'api'), log);
  const metrics = new ApiMetrics(() => hub.clients);
  const hub = new EventHub(log.child({ part: 'events' }), () => metrics.eventsRejected.inc());
  hub.start(nc);
  const app = await buildApp(config, redis, queues, hub, metrics, log, { usage: new UsageAsker(nc), nats: nc, logs: new LogsAsker(nc) });
  await app.listen({ host: config.host, port: config.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const url = `${config.tlsCertFile ? 'https' : 'http'}://${config.host}:${port}`;
  log.info({ url }, 'API listening');
  return {
    app,
    url,
    async stop() {
      hub.stop();
      await app.close();
      await nc.drain();
      await Promise.all([queues.workloads.close(), queues.migrations.close(), queues.flows.close()]);
      redis.disconnect();
    },
  };
}
