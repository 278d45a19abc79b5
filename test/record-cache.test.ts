import { describe, expect, it } from 'vitest';
import { realRedisStore } from './helpers/store.ts';
import { WorkloadSpec, type WorkloadRecord } from '@ferry/protocol';
import { RecordCache, RedisLock, TRIM_BEHIND } from '@ferry/store';
import { sampleWorkloadRecord } from './fixtures/capacity.ts';

/**
 * A process's copy of every workload, followed through the workloads hash's change log, against
 * the run's real redis-server: every writer (plain puts, inserts, removals, the fenced writes of a
 * migration) files its change, a refresh reads only what changed, and a copy that cannot follow
 * the log (behind its floor, or Redis counting from 0 again) reads everything.
 */
describe('a copy of every workload that reads only what changed (real Redis)', () => {
  const real = realRedisStore('cache');
  const spec = (id: string) => WorkloadSpec.parse({ id, template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 }, networks: [], pool: 'local' });
  const record = (id: string, hostId: string | null = null): WorkloadRecord => sampleWorkloadRecord(spec(id), hostId, hostId ? 'running' : 'pending');
  const hostsOf = (m: ReadonlyMap<string, WorkloadRecord>) => Object.fromEntries([...m].map(([id, w]) => [id, w.hostId]));

  it('follows every kind of write, reading only the changed records', async () => {
    await real.store.workloads.put('a', record('a', 'h1'));
    await real.store.workloads.putMany([
      ['b', record('b', 'h1')],
      ['c', record('c')],
    ]);
    const cache = new RecordCache(real.store.workloads);
    expect(hostsOf(await cache.refresh())).toEqual({ a: 'h1', b: 'h1', c: null });
    expect(cache.stats).toMatchObject({ full: 1, incremental: 0 });

    expect(await real.store.workloads.insert('d', record('d'))).toBe(true);
    expect(await real.store.workloads.insert('d', record('d', 'h9'))).toBe(false); // refused: no change filed
    await real.store.workloads.put('c', record('c', 'h2'));
    await real.store.workloads.remove('b');
    const lock = (await RedisLock.acquire(real.redis, real.store.keys.workloadLock('a'), 10_000, 'runner#1'))!;
    await real.store.writesUnder(lock.fence).putWorkload(record('a', 'h3'));
    expect(hostsOf(await cache.refresh())).toEqual({ a: 'h3', c: 'h2', d: null });
    expect(cache.stats).toMatchObject({ full: 1, incremental: 1, changed: 4 });

    // nothing written: one round trip, nothing read
    await cache.refresh();
    expect(cache.stats).toMatchObject({ full: 1, incremental: 1, changed: 4 });
    await lock.release();
  });

  it('reads everything again when behind the trimmed log, or when Redis counts from 0 again', async () => {
    const cache = new RecordCache(real.store.workloads);
    await cache.refresh();
    const full = cache.stats.full;
    // the log was trimmed past this copy (as after TRIM_BEHIND further writes)
    const keys = real.store.workloads.changes!;
    const rev = Number(await real.redis.get(keys.rev));
    await real.redis.set(keys.rev, String(rev + TRIM_BEHIND + 10));
    await real.redis.set(keys.floor, String(rev + 5));
    await real.store.workloads.put('e', record('e', 'h4'));
    expect(hostsOf(await cache.refresh())).toMatchObject({ e: 'h4' });
    expect(cache.stats.full).toBe(full + 1);
    // Redis lost its data: the revision starts from 0 again
    await real.redis.del(keys.rev, keys.log, keys.floor, real.store.keys.workloads);
    await real.store.workloads.put('f', record('f', 'h5'));
    expect(hostsOf(await cache.refresh())).toEqual({ f: 'h5' });
    expect(cache.stats.full).toBe(full + 2);
  });

  it('reads everything again when Redis lost its last writes and counted past them again', async () => {
    const cache = new RecordCache(real.store.workloads);
    await real.store.workloads.put('g', record('g', 'h1'));
    await cache.refresh();
    const keys = real.store.workloads.changes!;
    const before = Number(await real.redis.get(keys.rev));
    // two writes this copy reads, then Redis loses them (restarted from an AOF a second old) …
    await real.store.workloads.put('h', record('h', 'h2'));
    await real.store.workloads.put('g', record('g', 'h3'));
    expect(hostsOf(await cache.refresh())).toMatchObject({ g: 'h3', h: 'h2' });
    await real.redis.set(keys.rev, String(before));
    await real.redis.zrem(keys.log, 'h');
    await real.redis.zadd(keys.log, before, 'g');
    await real.redis.hdel(real.store.keys.workloads, 'h');
    await real.redis.hset(real.store.keys.workloads, 'g', JSON.stringify(record('g', 'h1')));
    // … and counts past the copy's revision with other writes
    await real.store.workloads.put('i', record('i', 'h4'));
    await real.store.workloads.put('j', record('j', 'h4'));
    await real.store.workloads.put('k', record('k', 'h4'));
    const full = cache.stats.full;
    const copy = hostsOf(await cache.refresh());
    expect(cache.stats.full).toBe(full + 1);
    expect(copy).toMatchObject({ g: 'h1', i: 'h4', j: 'h4', k: 'h4' });
    expect(copy).not.toHaveProperty('h');
  });
});
