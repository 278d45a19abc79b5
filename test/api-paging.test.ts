import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import type { Redis } from 'ioredis';
import { repoRoot } from '@ferry/deploy';
import { WorkloadSpec, redisKeys, type FailoverRecord, type WorkloadRecord, type WorkloadView } from '@ferry/protocol';
import { http, startTestCluster, type TestCluster } from './helpers/cluster.ts';

/**
 * Issue 16: every list route is paged (`limit` + `cursor` → `nextCursor`) with server-side
 * filters, end to end through the API's HTTP and Redis (records seeded straight into Redis, as the
 * scheduler would hold them), and the CLI follows the pages.
 */
describe('paged lists', () => {
  let t: TestCluster;
  let redis: Redis;
  const get = (path: string) => http(`${t.cluster.apiUrl}${path}`, { token: t.cluster.token });
  const ferry = (args: string[]) =>
    execa(join(repoRoot, 'packages', 'cli', 'bin', 'ferry'), args, {
      reject: false,
      cwd: repoRoot,
      env: { FERRY_CONFIG: '/nonexistent/ferry.yaml', FERRY_API_URL: t.cluster.apiUrl, FERRY_API_TOKEN: t.cluster.token },
    });

  const COUNT = 1_100;
  const id = (i: number) => `pg-${String(i).padStart(4, '0')}`;
  const workload = (i: number): WorkloadRecord => ({
    spec: WorkloadSpec.parse({
      id: id(i),
      template: 'alpine',
      command: ['sleep', 'infinity'],
      resources: { vcpus: 0.1, memoryMiB: 16, diskMiB: 8 },
      pool: 'default',
      labels: i % 10 === 0 ? { tier: 'web', zone: i % 20 === 0 ? 'a' : 'b' } : { tier: 'db' },
    }),
    hostId: null,
    epoch: 1,
    desired: 'stopped',
    phase: 'stopped',
    placement: null,
    lastExit: null,
    error: null,
    lastJob: null,
    migratingTo: null,
    cpu: null,
    createdAt: 1,
    updatedAt: 1,
  });
  const failover = (i: number): FailoverRecord => {
    const detectedAt = 1_700_000_000_000 + i * 1000;
    return {
      id: `f-gone-${i % 3}-${detectedAt.toString(36)}`,
      hostId: `gone-${i % 3}`,
      state: 'completed',
      detectedAt,
      startedAt: detectedAt,
      finishedAt: detectedAt + 1,
      restarts: [],
      unrecoverable: [],
      unprotected: [],
    };
  };

  /** Every page of a list route: the ids each page held. */
  async function walk(path: string, key: string, idOf: (r: any) => string, between?: (page: number) => Promise<void>): Promise<string[][]> {
    const pages: string[][] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const answer = await get(`${path}${cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      pages.push((answer.body[key] as any[]).map(idOf));
      cursor = answer.body.nextCursor as string | null;
      if (cursor && between) await between(pages.length);
    } while (cursor);
    return pages;
  }

  beforeAll(async () => {
    t = await startTestCluster();
    redis = t.cluster.redisAdmin();
    const keys = redisKeys(t.cluster.keyPrefix);
    await redis.hset(keys.workloads, ...Array.from({ length: COUNT }, (_, i) => [id(i), JSON.stringify(workload(i))]).flat());
    await redis.hset(keys.failovers, ...Array.from({ length: 12 }, (_, i) => failover(i)).flatMap((f) => [f.id, JSON.stringify(f)]));
  });

  afterAll(async () => {
    redis?.disconnect();
    await t?.close();
  });

  it('workloads: 100 a page by default, every record once in id order, nextCursor null on the last page', async () => {
    const first = await get('/v1/workloads');
    expect(first.status).toBe(200);
    expect(first.body.workloads).toHaveLength(100);
    expect(first.body.nextCursor).toEqual(expect.any(String));
    expect((first.body.workloads as WorkloadView[])[0]).toMatchObject({ spec: { id: id(0) }, observed: null });

    const pages = await walk('/v1/workloads?limit=250', 'workloads', (w: WorkloadView) => w.spec.id);
    expect(pages.map((p) => p.length)).toEqual([250, 250, 250, 250, 100]);
    expect(pages.flat()).toEqual(Array.from({ length: COUNT }, (_, i) => id(i)));
    const max = await walk('/v1/workloads?limit=1000', 'workloads', (w: WorkloadView) => w.spec.id);
    expect(max.map((p) => p.length)).toEqual([1000, 100]);
  });

  it('a walk is stable while records come and go: nothing repeats or is skipped', async () => {
    const keys = redisKeys(t.cluster.keyPrefix);
    const pages = await walk(
      '/v1/workloads?limit=300',
      'workloads',
      (w: WorkloadView) => w.spec.id,
      async (page) => {
        if (page !== 1) return;
        // after the first page: one not yet read goes, one is added after the cursor and one before it
        await redis.hdel(keys.workloads, id(900));
        await redis.hset(keys.workloads, 'pg-9999', JSON.stringify(workload(9999)), 'pg-0000a', JSON.stringify({ ...workload(1), spec: { ...workload(1).spec, id: 'pg-0000a' } }));
      },
    );
    const seen = pages.flat();
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...Array.from({ length: COUNT }, (_, i) => id(i)).filter((w) => w !== id(900)), 'pg-9999']);
    await redis.hdel(keys.workloads, 'pg-9999', 'pg-0000a');
    await redis.hset(keys.workloads, id(900), JSON.stringify(workload(900)));
  });

  it('filters on the server, across pages', async () => {
    const web = (await walk('/v1/workloads?label=tier%3Dweb&limit=7', 'workloads', (w: WorkloadView) => w.spec.id)).flat();
    expect(web).toEqual(Array.from({ length: COUNT / 10 }, (_, i) => id(i * 10)));
    const zoneA = (await walk('/v1/workloads?label=tier%3Dweb,zone%3Da&limit=1000', 'workloads', (w: WorkloadView) => w.spec.id)).flat();
    expect(zoneA).toHaveLength(COUNT / 20);
    const hasZone = (await walk('/v1/workloads?label=zone', 'workloads', (w: WorkloadView) => w.spec.id)).flat();
    expect(hasZone).toHaveLength(COUNT / 10);
    expect((await get('/v1/workloads?phase=running')).body).toEqual({ workloads: [], nextCursor: null });
    expect((await get('/v1/workloads?host=nowhere')).body).toEqual({ workloads: [], nextCursor: null });
  });

  it('failovers: newest first, paged, filtered by host', async () => {
    const pages = await walk('/v1/failovers?limit=5', 'failovers', (f: FailoverRecord) => f.id);
    expect(pages.map((p) => p.length)).toEqual([5, 5, 2]);
    expect(pages.flat()).toEqual(Array.from({ length: 12 }, (_, i) => failover(11 - i).id));
    const one = (await walk('/v1/failovers?host=gone-1&limit=2', 'failovers', (f: FailoverRecord) => f.hostId)).flat();
    expect(one).toEqual(['gone-1', 'gone-1', 'gone-1', 'gone-1']);
  });

  it('every list route takes limit and cursor and answers nextCursor', async () => {
    for (const [path, key] of [
      ['/v1/hosts', 'hosts'],
      ['/v1/migrations', 'migrations'],
      ['/v1/plans', 'plans'],
      ['/v1/failovers', 'failovers'],
      ['/v1/tokens', 'tokens'],
      ['/v1/workloads', 'workloads'],
    ] as const) {
      const answer = await get(`${path}?limit=1`);
      expect(answer.status, `${path}: ${JSON.stringify(answer.body)}`).toBe(200);
      expect(Array.isArray(answer.body[key]), path).toBe(true);
      expect(answer.body, path).toHaveProperty('nextCursor');
    }
  });

  it('a limit out of range or a cursor this API did not make is a clear 400', async () => {
    for (const [query, field] of [
      ['limit=0', 'query.limit'],
      ['limit=1001', 'query.limit'],
      ['limit=ten', 'query.limit'],
      ['cursor=not-a-cursor', 'query.cursor'],
      [`cursor=${Buffer.from('{"v":2,"after":"x"}').toString('base64url')}`, 'query.cursor'],
      ['label=Bad%20Key', 'query.label'],
    ]) {
      const answer = await get(`/v1/workloads?${query}`);
      expect(answer.status, query).toBe(400);
      expect(answer.body.code).toBe('BAD_REQUEST');
      expect(answer.body.details.problems.map((p: { field: string }) => p.field)).toEqual([field]);
    }
    expect((await get('/v1/migrations?limit=5000')).body.message).toContain('at most 1000 per page');
  });

  it('the CLI reads every page for a table, or one page with --limit and says how to get the next', async () => {
    const all = await ferry(['workloads', '-o', 'json']);
    expect(all.exitCode, all.stderr).toBe(0);
    const listed = JSON.parse(all.stdout) as { workloads: WorkloadView[]; nextCursor: string | null };
    expect(listed.workloads).toHaveLength(COUNT);
    expect(listed.nextCursor).toBeNull();

    const one = await ferry(['workloads', '--limit', '3', '--label', 'tier=web']);
    expect(one.exitCode, one.stderr).toBe(0);
    expect(one.stdout).toContain(id(0));
    expect(one.stdout).toContain(id(20));
    expect(one.stdout).not.toContain(id(30));
    const more = /more: ferry (.*)$/m.exec(one.stderr);
    expect(more, one.stderr).not.toBeNull();
    const next = await ferry(more![1]!.split(' '));
    expect(next.exitCode, next.stderr).toBe(0);
    expect(next.stdout).toContain(id(30));
    expect(next.stdout).not.toContain(id(20));

    expect((await ferry(['workloads', '--limit', '0'])).exitCode).not.toBe(0);
  });
});
