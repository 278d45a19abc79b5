import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { Supervisor, startNats, startRedis } from '@ferry/deploy';
import { createLogger } from '@ferry/runtime';

declare module 'vitest' {
  export interface ProvidedContext {
    natsUrl: string;
    redisUrl: string;
  }
}

/** A private nats-server and redis-server on free loopback ports for the whole integration run. */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-test-infra-'));
  const log = createLogger('test-infra');
  const supervisor = new Supervisor(join(dir, 'run.json'), join(dir, 'logs'), log);
  await supervisor.claim();
  const nats = await startNats(supervisor);
  const redis = await startRedis(supervisor, join(dir, 'redis'));
  project.provide('natsUrl', nats.url);
  project.provide('redisUrl', redis.url);
  return async () => {
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  };
}
