import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { WorkloadSpec, type WorkloadRecord } from '@ferry/protocol';
import { createLogger, readRedisPassword } from '@ferry/runtime';
import { ClusterStore, RecordCache, RedisLock, TRIM_BEHIND } from '@ferry/store';
import { sampleWorkloadRecord } from './fixtures/capacity.ts';

/**
 * A process's copy of every workload, followed through the workloads hash's change log, against
 * the run's real redis-server: every writer (plain puts, inserts, removals, the fenced writes of a
 * migration) files its change, a refresh reads only what changed, and a copy that cannot follow
 * the log (behind its floor, or Redis counting from 0 again) reads everything.
 */
describe('a copy of every workload that reads only what changed (real Redis)', () => {
  let redis: Redis;
  let store: ClusterStore;
  const prefix = `cache-${process.pid}`;
  const spec = (id: string) => WorkloadSpec.parse({ id, template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 }, networks: [], pool: 'local' });
  const record = (id: string, hostId: string | null = null): WorkloadRecord => sampleWorkloadRecord(spec(id), hostId, hostId ? 'running' : 'pending');
  const hostsOf = (m: ReadonlyMap<string, WorkloadRecord>) => Object.fromEntries([...m].map(([id, w]) => [id, w.hostId]));

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'), { username: inject('redisAdminUser'), password: readRedisPassword(inject('redisAdminPasswordFile')) });
    store = new ClusterStore(redis, prefix, createLogger('test').child({}, { level: 'silent' }));
  });

  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('follows every kind of write, reading only the changed records', async () => {
    await store.workloads.put('a', record('a', 'h1'));
    await store.workloads.putMany([
      ['b', record('b', 'h1')],
      ['c', record('c')],
    ]);
    const cache = new RecordCache(store.workloads);
    expect(hostsOf(await cache.refresh())).toEqual({ a: 'h1', b: 'h1', c: null });
    expect(cache.stats).toMatchObject({ full: 1, incremental: 0 });

    expect(await store.workloads.insert('d', record('d'))).toBe(true);
    expect(await store.workloads.insert('d', record('d', 'h9'))).toBe(false); // refused: no change filed
    await store.workloads.put('c', record('c', 'h2'));
    await store.workloads.remove('b');
    const lock = (await RedisLock.acquire(redis, store.keys.workloadLock('a'), 10_000, 'runner#1'))!;
    await store.writesUnder(lock.fence).putWorkload(record('a', 'h3'));
    expect(hostsOf(await cache.refresh())).toEqual({ a: 'h3', c: 'h2', d: null });
    expect(cache.stats).toMatchObject({ full: 1, incremental: 1, changed: 4 });

    // nothing written: one round trip, nothing read
    await cache.refresh();
    expect(cache.stats).toMatchObject({ full: 1, incremental: 1, changed: 4 });
    await lock.release();
  });

  it('reads everything again when behind the trimmed log, or when Redis counts from 0 again', async () => {
    const cache = new RecordCache(store.workloads);
    await cache.refresh();
    const full = cache.stats.full;
    // the log was trimmed past this copy (as after TRIM_BEHIND further writes)
    const keys = store.workloads.changes!;
    const rev = Number(await redis.get(keys.rev));
    await redis.set(keys.rev, String(rev + TRIM_BEHIND + 10));
    await redis.set(keys.floor, String(rev + 5));
    await store.workloads.put('e', record('e', 'h4'));
    expect(hostsOf(await cache.refresh())).toMatchObject({ e: 'h4' });
    expect(cache.stats.full).toBe(full + 1);
    // Redis lost its data: the revision starts from 0 again
    await redis.del(keys.rev, keys.log, keys.floor, store.keys.workloads);
    await store.workloads.put('f', record('f', 'h5'));
    expect(hostsOf(await cache.refresh())).toEqual({ f: 'h5' });
    expect(cache.stats.full).toBe(full + 2);
  });

  it('reads everything again when Redis lost its last writes and counted past them again', async () => {
    const cache = new RecordCache(store.workloads);
    await store.workloads.put('g', record('g', 'h1'));
    await cache.refresh();
    const keys = store.workloads.changes!;
    const before = Number(await redis.get(keys.rev));
    // two writes this copy reads, then Redis loses them (restarted from an AOF a second old) …
    await store.workloads.put('h', record('h', 'h2'));
    await store.workloads.put('g', record('g', 'h3'));
    expect(hostsOf(await cache.refresh())).toMatchObject({ g: 'h3', h: 'h2' });
    await redis.set(keys.rev, String(before));
    await redis.zrem(keys.log, 'h');
    await redis.zadd(keys.log, before, 'g');
    await redis.hdel(store.keys.workloads, 'h');
    await redis.hset(store.keys.workloads, 'g', JSON.stringify(record('g', 'h1')));
    // … and counts past the copy's revision with other writes
    await store.workloads.put('i', record('i', 'h4'));
    await store.workloads.put('j', record('j', 'h4'));
    await store.workloads.put('k', record('k', 'h4'));
    const full = cache.stats.full;
    const copy = hostsOf(await cache.refresh());
    expect(cache.stats.full).toBe(full + 1);
    expect(copy).toMatchObject({ g: 'h1', i: 'h4', j: 'h4', k: 'h4' });
    expect(copy).not.toHaveProperty('h');
  });
});
