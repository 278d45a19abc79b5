import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { connect } from 'nats';
import { freePort } from '@ferry/runtime';
import type { ManagedProcess, Supervisor } from './supervisor.ts';

export interface Embedded {
  url: string;
  process: ManagedProcess;
}

async function waitFor(what: string, probe: () => Promise<boolean>, managed: ManagedProcess, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (managed.exited) throw new Error(`${what} exited during start-up; see ${managed.logFile}`);
    if (await probe().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms; see ${managed.logFile}`);
}

/** A private nats-server on a free port of `host` (loopback, or a lab's management address). */
export async function startNats(supervisor: Supervisor, host = '127.0.0.1', name = 'nats'): Promise<Embedded> {
  const port = await freePort(host);
  const managed = supervisor.spawn(name, 'nats-server', ['-a', host, '-p', String(port)]);
  const url = `nats://${host}:${port}`;
  await waitFor(
    'nats-server',
    async () => {
      const nc = await connect({ servers: url, reconnect: false, timeout: 500 });
      await nc.close();
      return true;
    },
    managed,
  );
  return { url, process: managed };
}

/**
 * A private redis-server on a free port of `host`, without persistence (the cluster it serves is
 * as ephemeral as the lab it runs on). It gets a random password: on a lab's management address
 * other namespaces can reach it.
 */
export async function startRedis(
  supervisor: Supervisor,
  dataDir: string,
  options: { host?: string; name?: string } = {},
): Promise<Embedded> {
  const host = options.host ?? '127.0.0.1';
  const port = await freePort(host);
  mkdirSync(dataDir, { recursive: true });
  const password = randomBytes(18).toString('base64url');
  const managed = supervisor.spawn(options.name ?? 'redis', 'redis-server', [
    '--requirepass', password,
    '--bind', host,
    '--port', String(port),
    '--dir', dataDir,
    '--dbfilename', 'dump.rdb',
    '--logfile', join(dataDir, 'redis.log'),
    '--protected-mode', 'yes',
    '--appendonly', 'no',
    '--save', '',
  ]);
  const url = `redis://:${password}@${host}:${port}`;
  await waitFor(
    'redis-server',
    async () => {
      const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      redis.on('error', () => {}); // refused connections are expected until it listens
      try {
        await redis.connect();
        return (await redis.ping()) === 'PONG';
      } finally {
        redis.disconnect();
      }
    },
    managed,
  );
  return { url, process: managed };
}
