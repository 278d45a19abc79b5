import { describe, expect, it } from 'vitest';
import { realRedisStore } from './helpers/store.ts';
import { WorkloadSpec, decodeCursor, type WorkloadRecord } from '@ferry/protocol';
import { RedisLock } from '@ferry/store';
import { sampleMigrationRecord, sampleWorkloadRecord } from './fixtures/capacity.ts';

/**
 * The workloads hash's sorted id index (`<hash>:ids`), against the run's real redis-server: every
 * writer keeps it equal to the hash's ids, a page reads its ids from it, a Redis written before
 * the index existed is indexed at the first page, and paging through visits every id once.
 */
describe('pages of workloads read their ids from a sorted index (real Redis)', () => {
  const real = realRedisStore('index');
  const spec = (id: string) => WorkloadSpec.parse({ id, template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 }, networks: [], pool: 'local' });
  const record = (id: string, hostId: string | null = null): WorkloadRecord => sampleWorkloadRecord(spec(id), hostId, hostId ? 'running' : 'pending');
  const indexKey = () => real.store.workloads.changes!.ids;
  const indexed = () => real.redis.zrange(indexKey(), 0, -1);

  /** Every id, page after page of `limit`, following the cursors. */
  async function pageThrough(limit: number, keep?: (w: WorkloadRecord) => boolean): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let after: string | undefined;
    for (let pages = 1; ; pages++) {
      const page = await real.store.workloads.page({ limit, after }, keep ? { keep } : {});
      ids.push(...page.items.map((w) => w.spec.id));
      if (!page.nextCursor) return { ids, pages };
      after = decodeCursor(page.nextCursor) ?? undefined;
    }
  }

  it('follows every writer: puts, inserts, removals and the fenced writes of a migration', async () => {
    await real.store.workloads.put('w-b', record('w-b'));
    await real.store.workloads.putMany([
      ['w-a', record('w-a', 'h1')],
      ['w-c', record('w-c')],
    ]);
    expect(await real.store.workloads.insert('w-d', record('w-d'))).toBe(true);
    expect(await real.store.workloads.insert('w-d', record('w-d'))).toBe(false);
    await real.store.workloads.remove('w-c');
    await real.store.workloads.remove('w-zz'); // not there: nothing changes
    const lock = (await RedisLock.acquire(real.redis, real.store.keys.workloadLock('w-e'), 10_000, 'runner#1'))!;
    await real.store.writesUnder(lock.fence).putWorkload(record('w-e', 'h2'));
    await real.store.writesUnder(lock.fence).commitMigration(record('w-a', 'h3'), sampleMigrationRecord({ workloadId: 'w-a' }));
    await lock.release();
    expect(await indexed()).toEqual(['w-a', 'w-b', 'w-d', 'w-e']);
    expect((await real.store.workloads.ids()).sort()).toEqual(await indexed());
  });

  it('pages through every id once in byte order, filtered or not, from the index', async () => {
    const ids = Array.from({ length: 57 }, (_, i) => `w-${String(i).padStart(3, '0')}`);
    await real.store.workloads.putMany(ids.map((id, i) => [id, record(id, i % 5 === 0 ? 'h5' : 'h1')]));
    const all = (await real.store.workloads.ids()).sort();
    expect(await pageThrough(10)).toEqual({ ids: all, pages: Math.ceil(all.length / 10) });
    const onH5 = await pageThrough(4, (w) => w.hostId === 'h5');
    expect(onH5.ids).toEqual(ids.filter((_, i) => i % 5 === 0));
    // a prefix: only its ids, from the cursor on
    expect((await real.store.workloads.page({ limit: 3, after: 'w-010' }, { prefix: 'w-01' })).items.map((w) => w.spec.id)).toEqual(['w-011', 'w-012', 'w-013']);
    expect((await real.store.workloads.page({ limit: 100, after: 'a' }, { prefix: 'w-05' })).items.map((w) => w.spec.id)).toEqual(ids.filter((id) => id.startsWith('w-05')));
  });

  it('indexes a hash written before the index existed at the first page', async () => {
    await real.redis.del(indexKey());
    await real.redis.hset(real.store.keys.workloads, 'w-old', JSON.stringify(record('w-old'))); // as an older Ferry wrote it: no index
    const first = await real.store.workloads.page({ limit: 1000 });
    expect(first.items.map((w) => w.spec.id)).toContain('w-old');
    expect(await indexed()).toEqual((await real.store.workloads.ids()).sort());
  });

  it('a record gone between the index and the read ends the page early with its cursor: nothing is skipped', async () => {
    // the index names an id whose record is gone (another id took its place in the count)
    await real.redis.hdel(real.store.keys.workloads, 'w-001');
    await real.redis.hset(real.store.keys.workloads, 'x-not-indexed', JSON.stringify(record('x-not-indexed')));
    const page = await real.store.workloads.page({ limit: 3 });
    // four ids read (three and one to know whether more follow): the fourth fills the gap, and
    // the cursor stays on it although no id of this read is left
    expect(page.items.map((w) => w.spec.id)).toEqual(['w-000', 'w-002', 'w-003']);
    expect(decodeCursor(page.nextCursor!)).toBe('w-003');
    const next = await real.store.workloads.page({ limit: 3, after: 'w-003' });
    expect(next.items.map((w) => w.spec.id)).toEqual(['w-004', 'w-005', 'w-006']);
  });
});
