import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { RedisPasswords, Supervisor, startRedis } from '@ferry/deploy';
import { createLogger } from '@ferry/runtime';

declare module 'vitest' {
  export interface ProvidedContext {
    /** the shared Redis (no credentials in the URL) */
    redisUrl: string;
    /** its administrator: each test cluster creates its own users through it (ACL SETUSER) */
    redisAdminUser: string;
    redisAdminPasswordFile: string;
    /** the redis-server's pid (tests look at its command line) */
    redisPid: number;
  }
}

/**
 * A private redis-server on a free loopback port for the whole integration run, with ACLs: the
 * `default` user off, only an administrator to begin with; each test cluster adds its own users
 * (`<key prefix>-scheduler`, `<key prefix>-api`), confined to its key prefix, as a cluster sharing
 * a Redis would. (NATS is each cluster's own: it holds that cluster's identities.)
 */
export default async function setup(project: TestProject) {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-test-infra-'));
  const log = createLogger('test-infra');
  const supervisor = new Supervisor(join(dir, 'run.json'), join(dir, 'logs'), log);
  await supervisor.claim();
  const passwords = new RedisPasswords(join(dir, 'secrets'));
  const redis = await startRedis(supervisor, join(dir, 'redis'), { passwords });
  project.provide('redisUrl', redis.url);
  project.provide('redisAdminUser', redis.admin.user);
  project.provide('redisAdminPasswordFile', redis.admin.passwordFile);
  project.provide('redisPid', redis.process.pid);
  return async () => {
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  };
}
