import { describe, expect, it } from 'vitest';
import { Counter, createRegistry, serveMetrics, serveMetricsIfPossible } from './metrics.ts';
import { createLogger } from './logger.ts';

const log = createLogger('test').child({}, { level: 'silent' });

describe('metrics endpoint', () => {
  it('serves GET /metrics in the Prometheus text format and nothing else', async () => {
    const registry = createRegistry('unit');
    new Counter({ name: 'ferry_test_total', help: 'a test counter', registers: [registry] }).inc(3);
    const server = await serveMetrics(registry, '127.0.0.1', 0, log);
    try {
      const res = await fetch(server.url);
      expect(res.headers.get('content-type')).toContain('text/plain');
      const text = await res.text();
      expect(text).toContain('ferry_test_total{service="unit"} 3');
      expect(text).toContain('process_cpu_seconds_total');
      expect((await fetch(server.url.replace('/metrics', '/other'))).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it('runs on without metrics when the port is taken', async () => {
    const first = await serveMetrics(createRegistry('a'), '127.0.0.1', 0, log);
    try {
      const port = Number(new URL(first.url).port);
      expect(await serveMetricsIfPossible(createRegistry('b'), '127.0.0.1', port, log)).toBeNull();
    } finally {
      await first.close();
    }
  });
});
