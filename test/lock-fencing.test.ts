import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { WorkloadSpec, type MigrationRecord } from '@ferry/protocol';
import { createLogger, readRedisPassword } from '@ferry/runtime';
import { ClusterStore, LockLostError, RedisLock, withLock } from '@ferry/store';
import { sampleMigrationRecord, sampleWorkloadRecord } from './fixtures/capacity.ts';

/**
 * Writes fenced by a workload's lock, against the run's real redis-server: a holder whose lock
 * lapsed and was taken over writes nothing (the Lua check and write are one step in Redis). The
 * lab's fault matrix shows the same with a scheduler SIGSTOPped past its lock (test/faults.test.ts).
 */
describe('writes fenced by a lock (real Redis)', () => {
  let redis: Redis;
  let store: ClusterStore;
  const prefix = `fence-${process.pid}`;
  const spec = WorkloadSpec.parse({ id: 'w1', template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 }, networks: [], pool: 'local' });
  const migration = (state: MigrationRecord['state'], id = 'm-w1-a'): MigrationRecord => sampleMigrationRecord({ id, state, phase: 'freeze' });

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { username: inject('redisAdminUser'), password: readRedisPassword(inject('redisAdminPasswordFile')) });
    store = new ClusterStore(redis, prefix, createLogger('test'));
  });

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('a holder whose lock lapsed and was taken over writes nothing; the new holder writes', async () => {
    const key = store.keys.workloadLock('w1');
    const first = (await RedisLock.acquire(redis, key, 200, 'runner#a'))!;
    await sleep(300); // "paused" past the TTL
    const second = (await RedisLock.acquire(redis, key, 10_000, 'runner#b'))!;
    expect(second).not.toBeNull();
    const stale = store.writesUnder(first.fence);
    const current = store.writesUnder(second.fence);

    await current.putMigration(migration('rolling-back'));
    await expect(stale.check()).rejects.toBeInstanceOf(LockLostError);
    await expect(stale.putMigration(migration('running'))).rejects.toBeInstanceOf(LockLostError);
    await expect(stale.putWorkload(sampleWorkloadRecord(spec, 'h2'))).rejects.toBeInstanceOf(LockLostError);
    await expect(stale.commitMigration(sampleWorkloadRecord(spec, 'h2'), migration('running'))).rejects.toBeInstanceOf(LockLostError);

    expect((await store.migrations.get('m-w1-a'))?.state).toBe('rolling-back');
    expect(await store.workloads.get('w1')).toBeNull();
    await current.check();
    await current.commitMigration(sampleWorkloadRecord(spec, 'h2'), migration('running'));
    expect((await store.workloads.get('w1'))?.hostId).toBe('h2');
    expect((await store.migrations.get('m-w1-a'))?.state).toBe('running');
    await second.release();
  });

  it('two acquisitions by the same owner are told apart', async () => {
    const key = store.keys.workloadLock('w2');
    const tokens: string[] = [];
    await withLock(redis, key, 'm-w2-a', 5_000, async (lock) => void tokens.push(lock.token));
    await withLock(redis, key, 'm-w2-a', 5_000, async (lock) => void tokens.push(lock.token));
    expect(tokens[0]).not.toBe(tokens[1]);
    expect(tokens.every((t) => t.startsWith('m-w2-a#'))).toBe(true);
    expect(await redis.exists(key)).toBe(0); // released
  });

  it('a lock with no holder at all (lost with Redis data) fences too', async () => {
    const key = store.keys.workloadLock('w3');
    const lock = (await RedisLock.acquire(redis, key, 10_000))!;
    await redis.del(key);
    await expect(store.writesUnder(lock.fence).putMigration(migration('running', 'm-w3-a'))).rejects.toBeInstanceOf(LockLostError);
    expect(await store.migrations.get('m-w3-a')).toBeNull();
  });
});
