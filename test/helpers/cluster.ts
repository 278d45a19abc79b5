import { mkdtempSync, rmSync } from 'node:fs';
import type { NatsConnection } from 'nats';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { inject } from 'vitest';
import { LocalCluster, type ClusterOptions } from '@ferry/deploy';
import { createLogger } from '@ferry/runtime';

export interface TestCluster {
  cluster: LocalCluster;
  nc: NatsConnection;
  stateDir: string;
  close(): Promise<void>;
}

let counter = 0;

/**
 * Scheduler and API as real child processes with their own NATS (TLS, NKey identities) against
 * the run's private Redis, with their own Redis key prefix, Redis users (confined to that prefix)
 * and state directory. Agents are
 * started by each test (their hosts admitted through `hostIds` or admitHost). `nc` is the
 * cluster's `observer` identity: it reads events and can publish nothing.
 */
export async function startTestCluster(options: Partial<ClusterOptions> = {}): Promise<TestCluster> {
  const stateDir = mkdtempSync(join(tmpdir(), 'ferry-test-'));
  const cluster = new LocalCluster({
    stateDir,
    redisUrl: inject('redisUrl'),
    redisAdmin: { user: inject('redisAdminUser'), passwordFile: inject('redisAdminPasswordFile') },
    keyPrefix: `t${process.pid}x${counter++}`,
    log: createLogger('test-cluster').child({}, { level: 'warn' }),
    ...options,
  });
  await cluster.start();
  const nc = await cluster.connectNats('observer');
  return {
    cluster,
    nc,
    stateDir,
    async close() {
      await nc.close();
      await cluster.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

export async function eventually<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 15_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(everyMs);
  }
}

/** Raw HTTP against the API: status, headers and parsed JSON body. */
export async function http(url: string, init: { token?: string | undefined; method?: string; body?: unknown } = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (init.token !== undefined) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null, headers: response.headers };
}
