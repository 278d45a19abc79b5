import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { Supervisor, startRedis } from '@ferry/deploy';
import { createLogger } from '@ferry/runtime';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/**
 * A private redis-server on a free loopback port for the whole integration run. (NATS is each
 * cluster's own: it holds that cluster's identities.)
 */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-test-infra-'));
  const log = createLogger('test-infra');
  const supervisor = new Supervisor(join(dir, 'run.json'), join(dir, 'logs'), log);
  await supervisor.claim();
  const redis = await startRedis(supervisor, join(dir, 'redis'));
  project.provide('redisUrl', redis.url);
  return async () => {
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  };
}
