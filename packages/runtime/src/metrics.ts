import { createServer } from 'node:http';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { PlanRecord } from '@ferry/protocol';
import type { Logger } from './logger.ts';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** One registry per service process, with the process's own CPU, memory and event-loop figures. */
export function createRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text format) on its own port, for the services without an
 * HTTP server of their own (agent, scheduler). Port 0 picks a free one.
 */
export async function serveMetrics(registry: Registry, host: string, port: number, log: Logger): Promise<MetricsServer> {
  const server = createServer((request, response) => {
    if (request.method !== 'GET' || (request.url ?? '').split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        log.error({ err }, 'collecting metrics failed');
        response.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const url = `http://${host}:${typeof address === 'object' && address ? address.port : port}/metrics`;
  log.info({ url }, 'metrics served');
  return { url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/**
 * `ferry_plan_score{kind, stage}`: the cluster's imbalance score before and after the newest plan
 * of each kind. Plans are made by the API (on request) and by the scheduler (automatic
 * rebalancing), so both export it.
 */
export function planScoreMetric(registry: Registry): (plan: Pick<PlanRecord, 'kind' | 'scoreBefore' | 'scoreAfter'>) => void {
  const gauge = new Gauge({
    name: 'ferry_plan_score',
    help: 'Imbalance score of the cluster before and after the newest plan of each kind (lower is better)',
    labelNames: ['kind', 'stage'] as const,
    registers: [registry],
  });
  return (plan) => {
    if (plan.scoreBefore !== null) gauge.set({ kind: plan.kind, stage: 'before' }, plan.scoreBefore);
    if (plan.scoreAfter !== null) gauge.set({ kind: plan.kind, stage: 'after' }, plan.scoreAfter);
  };
}

/**
 * serveMetrics for a service whose real work matters more than its metrics (an agent that must
 * keep its lease, a scheduler): a port that cannot be had is logged, and the service runs on.
 */
export async function serveMetricsIfPossible(registry: Registry, host: string, port: number, log: Logger): Promise<MetricsServer | null> {
  try {
    return await serveMetrics(registry, host, port, log);
  } catch (err) {
    log.error({ host, port, err: (err as Error).message }, 'metrics not served (the port is taken or the address is wrong); running without them');
    return null;
  }
}
