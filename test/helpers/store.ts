import { Redis } from 'ioredis';
import { afterAll, beforeAll, inject } from 'vitest';
import { createLogger, readRedisPassword } from '@ferry/runtime';
import { ClusterStore } from '@ferry/store';

/**
 * A ClusterStore on the run's real redis-server (the global setup's), under a key prefix of its
 * own: connected before the file's tests, its keys deleted and the connection closed after them.
 * The getters are for use inside tests (the store exists once beforeAll ran).
 */
export function realRedisStore(name: string): { readonly redis: Redis; readonly store: ClusterStore; readonly prefix: string } {
  const prefix = `${name}-${process.pid}`;
  let redis: Redis | undefined;
  let store: ClusterStore | undefined;
  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { username: inject('redisAdminUser'), password: readRedisPassword(inject('redisAdminPasswordFile')) });
    store = new ClusterStore(redis, prefix, createLogger('test').child({}, { level: 'silent' }));
  });
  afterAll(async () => {
    if (!redis) return;
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });
  return {
    prefix,
    get redis() {
      if (!redis) throw new Error('the store is connected in beforeAll: use it inside a test');
      return redis;
    },
    get store() {
      if (!store) throw new Error('the store is connected in beforeAll: use it inside a test');
      return store;
    },
  };
}
