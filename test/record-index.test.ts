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

/**
 * The workloads' index by host (field-index.ts: `<hash>:hostId=<host>` sorted sets and the
 * `<hash>:hostId-of` hash), against the same real redis-server: every writer keeps it equal to
 * what the records say, a workload that moves or goes leaves its old host's set, a page of one host
 * reads only that host's ids, and a Redis written before the index existed is indexed at the first
 * such page — in several steps when it is large.
 */
describe("one host's workloads are read from an index by host (real Redis)", () => {
  const real = realRedisStore('host-index');
  const spec = (id: string, labels: Record<string, string> = {}) =>
    WorkloadSpec.parse({ id, template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 }, networks: [], pool: 'local', labels });
  const record = (id: string, hostId: string | null = null, labels: Record<string, string> = {}): WorkloadRecord => sampleWorkloadRecord(spec(id, labels), hostId, hostId ? 'running' : 'pending');
  const index = () => real.store.workloads.fieldIndex!;

  /** What the index holds: each host's ids (from its sorted set) and the `-of` hash. */
  async function indexed(): Promise<{ byHost: Record<string, string[]>; of: Record<string, string> }> {
    const sets = await real.redis.keys(`${index().prefix}*`);
    const byHost: Record<string, string[]> = {};
    for (const key of sets.sort()) byHost[key.slice(index().prefix.length)] = await real.redis.zrange(key, 0, -1);
    return { byHost, of: await real.redis.hgetall(index().of) };
  }

  /** What the index should hold, from the records themselves. */
  async function expected(): Promise<{ byHost: Record<string, string[]>; of: Record<string, string> }> {
    const byHost: Record<string, string[]> = {};
    const of: Record<string, string> = {};
    for (const w of await real.store.workloads.all()) {
      of[w.spec.id] = w.hostId ?? '';
      if (w.hostId) (byHost[w.hostId] ??= []).push(w.spec.id);
    }
    for (const ids of Object.values(byHost)) ids.sort();
    return { byHost: Object.fromEntries(Object.entries(byHost).sort(([a], [b]) => (a < b ? -1 : 1))), of };
  }

  const exact = async () => expect(await indexed()).toEqual(await expected());

  /** Every id of one host, page after page of `limit`, following the cursors. */
  async function pageThroughHost(host: string, limit: number, keep?: (w: WorkloadRecord) => boolean, prefix?: string): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let after: string | undefined;
    for (let pages = 1; ; pages++) {
      const page = await real.store.workloads.page({ limit, after }, { indexed: host, keep: (w) => w.hostId === host && (!keep || keep(w)), ...(prefix ? { prefix } : {}) });
      ids.push(...page.items.map((w) => w.spec.id));
      if (!page.nextCursor) return { ids, pages };
      after = decodeCursor(page.nextCursor) ?? undefined;
    }
  }

  it('follows every writer: puts, inserts, host moves, removals and the fenced writes of a migration', async () => {
    await real.store.workloads.put('w-a', record('w-a', 'h1'));
    await exact();
    await real.store.workloads.putMany([
      ['w-b', record('w-b', 'h1')],
      ['w-c', record('w-c')],
      ['w-d', record('w-d', 'h2')],
    ]);
    await exact();
    expect(await real.store.workloads.insert('w-e', record('w-e', 'h2'))).toBe(true);
    // an insert refused (the id exists) changes nothing, although its record names another host
    expect(await real.store.workloads.insert('w-e', record('w-e', 'h3'))).toBe(false);
    await exact();
    // a move by a plain put: out of h1's set, into h3's; a put that keeps the host changes nothing
    await real.store.workloads.put('w-a', record('w-a', 'h3'));
    await real.store.workloads.put('w-b', { ...record('w-b', 'h1'), phase: 'stopped' });
    await exact();
    expect((await indexed()).byHost).toEqual({ h1: ['w-b'], h2: ['w-d', 'w-e'], h3: ['w-a'] });
    // placed (null → host), then unplaced (host → null)
    await real.store.workloads.put('w-c', record('w-c', 'h1'));
    await real.store.workloads.put('w-d', record('w-d'));
    await exact();
    // removed: out of its host's set and of the `-of` hash; an id not there changes nothing
    await real.store.workloads.remove('w-b');
    await real.store.workloads.remove('w-zz');
    await exact();
    // the fenced writes of a migration: a put while it runs, then the commit that moves it
    const lock = (await RedisLock.acquire(real.redis, real.store.keys.workloadLock('w-e'), 10_000, 'runner#1'))!;
    await real.store.writesUnder(lock.fence).putWorkload({ ...record('w-e', 'h2'), migratingTo: 'h4' });
    await exact();
    // while it migrates to h4 it is still under h2 (the host its record names): h4 holds nothing yet
    expect((await indexed()).byHost.h4).toBeUndefined();
    await real.store.writesUnder(lock.fence).commitMigration(record('w-e', 'h4'), sampleMigrationRecord({ workloadId: 'w-e' }));
    await lock.release();
    // a fenced write whose lock is lost writes nothing: the index does not move either
    await expect(real.store.writesUnder(lock.fence).putWorkload(record('w-e', 'h9'))).rejects.toThrow();
    await exact();
    expect((await indexed()).byHost).toEqual({ h1: ['w-c'], h3: ['w-a'], h4: ['w-e'] });
    expect(await real.redis.exists(`${index().prefix}h2`)).toBe(0); // emptied sets go away
  });

  it("pages through one host's workloads once each, in id order, with the other filters and a prefix", async () => {
    const ids = Array.from({ length: 157 }, (_, i) => `p-${String(i).padStart(3, '0')}`);
    await real.store.workloads.putMany(ids.map((id, i) => [id, record(id, i % 5 === 0 ? 'h5' : i % 5 === 1 ? 'h6' : null, { tier: i % 2 === 0 ? 'web' : 'db' })]));
    await exact();
    const onH5 = ids.filter((_, i) => i % 5 === 0);
    for (const limit of [1, 4, 10, 1000]) {
      const walk = await pageThroughHost('h5', limit);
      expect(walk.ids).toEqual(onH5);
      expect(walk.pages).toBe(Math.max(1, Math.ceil(onH5.length / limit)));
    }
    const webOnH5 = await pageThroughHost('h5', 3, (w) => w.spec.labels.tier === 'web');
    expect(webOnH5.ids).toEqual(onH5.filter((_, i) => (i * 5) % 2 === 0));
    expect((await pageThroughHost('h5', 2, undefined, 'p-01')).ids).toEqual(onH5.filter((id) => id.startsWith('p-01')));
    expect((await pageThroughHost('nowhere', 10)).ids).toEqual([]);
    // a page of one host reads that host's records only: the index names nothing else
    const read: string[][] = [];
    const spy = real.store.workloads.getMany.bind(real.store.workloads);
    real.store.workloads.getMany = async (chunk) => (read.push(chunk), spy(chunk));
    try {
      await pageThroughHost('h6', 100);
    } finally {
      delete (real.store.workloads as { getMany?: unknown }).getMany;
    }
    expect(read.flat()).toEqual(ids.filter((_, i) => i % 5 === 1));
  });

  it('a host move between two pages neither repeats nor skips the others', async () => {
    const first = await real.store.workloads.page({ limit: 10 }, { indexed: 'h5', keep: (w) => w.hostId === 'h5' });
    const moved = first.items[3]!.spec.id; // already listed: it leaves
    const later = 'p-150'; // not yet listed: it leaves too
    await real.store.workloads.put(moved, record(moved, 'h6'));
    await real.store.workloads.put(later, record(later, 'h6'));
    await real.store.workloads.put('p-151', record('p-151', 'h5')); // arrives after the cursor: listed
    let after = decodeCursor(first.nextCursor!) ?? undefined;
    const rest: string[] = [];
    while (after !== undefined) {
      const page = await real.store.workloads.page({ limit: 10, after }, { indexed: 'h5', keep: (w) => w.hostId === 'h5' });
      rest.push(...page.items.map((w) => w.spec.id));
      after = page.nextCursor ? (decodeCursor(page.nextCursor) ?? undefined) : undefined;
    }
    const all = [...first.items.map((w) => w.spec.id), ...rest];
    expect(new Set(all).size).toBe(all.length);
    expect(rest).not.toContain(later);
    expect(rest).toContain('p-151');
    await exact();
  });

  it('indexes a hash written before the index existed (and prunes ids whose record is gone) at the first page of a host, in steps', async () => {
    // as an older Ferry left it: records written without the index (more than one build step's worth)
    await real.redis.del(...(await real.redis.keys(`${index().prefix}*`)), index().of);
    const old = Array.from({ length: 4321 }, (_, i) => `o-${String(i).padStart(4, '0')}`);
    await real.redis.hset(real.store.keys.workloads, ...old.flatMap((id, i) => [id, JSON.stringify(record(id, `oh-${i % 7}`))]));
    // and an id in `-of` whose record is gone, filed in a set it no longer belongs to
    await real.redis.hset(index().of, 'o-gone', 'oh-1');
    await real.redis.zadd(`${index().prefix}oh-1`, 0, 'o-gone');
    expect((await pageThroughHost('oh-3', 250)).ids).toEqual(old.filter((_, i) => i % 7 === 3));
    await exact();
    expect(await real.redis.zrange(`${index().prefix}oh-1`, 0, -1)).not.toContain('o-gone');
    // complete now: the next page builds nothing
    expect(await real.store.workloads.ensureFieldIndex()).toBe(false);
  });
});
