import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FailoverRecord, HostHistoryEntry, HostListResponse, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { eventually, http } from './helpers/cluster.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { labWorkload } from './helpers/workload.ts';

/**
 * Durable state (docs/failover.md, "Durable state"): the embedded Redis is persistent and
 * supervised, the API answers 503 while it is away, and the cluster's workload records come back
 * from the agents after Redis lost its data — HA protection included, nothing discarded, nothing
 * run twice — while a copy of a workload deleted while its host was away is still discarded.
 */
describe.skipIf(skipLab())('durable state: Redis restarts and data loss (real agents in lab hosts)', () => {
  let t: LabCluster;
  let admin: Redis;

  beforeAll(async () => {
    // a slow restart of the embedded Redis, so that the outage lasts long enough to be watched
    t = await startLabCluster(
      ['h1', 'h2', 'h3'],
      [PROD],
      { FERRY_SUSPECT_AFTER_MS: '1500', FERRY_LEASE_MS: '3000', FERRY_DOWN_AFTER_MS: '4500' },
      {},
      {
        redisRestart: { policy: 'on-failure', minBackoffMs: 6_000 },
      },
    );
    admin = t.cluster.redisAdmin({ maxRetriesPerRequest: null });
    admin.on('error', () => {});
  });

  afterAll(async () => {
    admin?.disconnect();
    await t?.close();
  });

  const api = (method: string, path: string, body?: unknown) => http(`${t.cluster.apiUrl}${path}`, { token: t.cluster.token, method, body });
  const get = (id: string) => t.cluster.get<WorkloadView>(`/v1/workloads/${id}`);
  const workloads = async () => (await t.cluster.get<{ workloads: WorkloadView[] }>('/v1/workloads')).workloads;
  const history = async (host: string) => (await t.cluster.get<{ history: HostHistoryEntry[] }>(`/v1/hosts/${host}/history`)).history;
  const containerRecord = (hostId: string, id: string) => join(t.lab.host(hostId).dir, 'data', 'containers', id, 'record.json');
  const spec = labWorkload;
  const createRunning = async (specs: WorkloadSpecInput[]) => {
    for (const s of specs) {
      const res = await api('POST', '/v1/workloads', s);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
    }
    for (const s of specs) {
      await eventually(
        `${s.id} running`,
        async () => {
          const w = await get(s.id);
          if (w.phase === 'failed') throw new Error(w.error?.message);
          return w.phase === 'running' && w.observed?.state === 'running';
        },
        60_000,
      );
    }
  };
  /** every running copy the hosts report, by workload id: the hosts they run on */
  const runningCopies = async () => {
    const copies = new Map<string, string[]>();
    for (const host of (await t.cluster.get<HostListResponse>('/v1/hosts')).hosts) {
      if (host.state !== 'up') continue;
      for (const c of host.capacity.containers) if (c.state === 'running') copies.set(c.id, [...(copies.get(c.id) ?? []), host.id]);
    }
    return copies;
  };
  const generationOf = (hostId: string, id: string) => (JSON.parse(readFileSync(containerRecord(hostId, id), 'utf8')) as { generation?: string }).generation;

  it('(a) kill -9 of the embedded Redis: 503 UNAVAILABLE while it is down (never 500), restarted by the supervisor, every record kept', async () => {
    await createRunning([spec('dur-a', '10.77.0.131'), spec('dur-b', '10.77.0.132', { ha: { enabled: false, priority: 0 } })]);
    expect((await api('POST', '/v1/tokens', { name: 'durable-viewer', role: 'viewer' })).status).toBe(201);
    const before = await workloads();
    const historyBefore = await history(before[0]!.hostId!);
    const redis = t.cluster.supervisor.list().find((p) => p.name === 'redis' && !p.exited)!;
    const firstPid = redis.pid;
    const scheduler = t.cluster.supervisor.list().find((p) => p.name === 'scheduler')!;

    const killedAt = Date.now();
    process.kill(firstPid, 'SIGKILL');
    // while it is down: every route answers 503 with the message, reads and writes alike; /healthz says so
    const down = await eventually(
      'a 503 from the API',
      async () => {
        const res = await api('GET', '/v1/workloads');
        return res.status === 503 ? res : null;
      },
      3_000,
      50,
    );
    expect(down.body).toEqual({ code: 'UNAVAILABLE', message: 'Redis is unreachable: the cluster state cannot be read right now; try again' });
    const health = await http(`${t.cluster.apiUrl}/healthz`);
    const answers = await Promise.all([
      api('GET', '/v1/hosts'),
      api('GET', `/v1/workloads/dur-a`),
      api('POST', '/v1/workloads', spec('dur-c', '10.77.0.133')),
      api('POST', '/v1/workloads/dur-a/stop'),
      api('GET', '/v1/failovers'),
      api('GET', '/v1/tokens'),
    ]);
    expect(answers.map((r) => r.status)).toEqual([503, 503, 503, 503, 503, 503]);
    for (const r of answers) expect(r.body.code).toBe('UNAVAILABLE');
    expect(health.status).toBe(503);
    expect(health.body).toMatchObject({ status: 'degraded', redis: false });
    expect(health.body.message).toContain('Redis is unreachable');
    expect(Date.now() - killedAt).toBeLessThan(6_000); // all of it seen before the restart

    // the supervisor starts it again (same port, same configuration): the API is back by itself
    await eventually('Redis restarted', async () => redis.restarts === 1 && !redis.exited, 15_000);
    expect(redis.pid).not.toBe(firstPid);
    await eventually('the API healthy again', async () => (await http(`${t.cluster.apiUrl}/healthz`)).status === 200, 15_000);
    const after = await workloads();
    expect(after.map((w) => [w.spec.id, w.hostId, w.epoch, w.phase, w.spec.ha.enabled])).toEqual(before.map((w) => [w.spec.id, w.hostId, w.epoch, w.phase, w.spec.ha.enabled]));
    expect(((await api('GET', '/v1/tokens')).body as { tokens: Array<{ name: string }> }).tokens.map((x) => x.name)).toContain('durable-viewer');
    expect((await history(before[0]!.hostId!)).length).toBeGreaterThanOrEqual(historyBefore.length);
    expect(await admin.get(`${t.cluster.keyPrefix}:cluster:generation`)).not.toBeNull(); // the same generation: no rebuild

    // the scheduler rode it out (BullMQ reconnects), and workload operations work again
    expect(scheduler.exited).toBe(false);
    await createRunning([spec('dur-c', '10.77.0.133')]);
    const stop = await api('POST', '/v1/workloads/dur-b/stop');
    expect(stop.status, JSON.stringify(stop.body)).toBe(202);
    await eventually('dur-b stopped', async () => (await get('dur-b')).phase === 'stopped', 30_000);
    expect((await api('POST', '/v1/workloads/dur-b/start')).status).toBe(202);
    await eventually('dur-b running again', async () => (await get('dur-b')).phase === 'running', 30_000);
    expect(scheduler.exited).toBe(false);
  }, 180_000);

  it('(b) Redis lost its data: workload records rebuilt from the hosts, HA included, said in the history; nothing discarded or run twice', async () => {
    const before = (await workloads()).filter((w) => w.spec.id.startsWith('dur-'));
    expect(before.map((w) => w.spec.id).sort()).toEqual(['dur-a', 'dur-b', 'dur-c']);
    // every copy carries the generation that confirmed it
    const generation = JSON.parse((await admin.get(`${t.cluster.keyPrefix}:cluster:generation`))!) as { id: string };
    await eventually('copies stamped', async () => before.every((w) => generationOf(w.hostId!, w.spec.id) === generation.id), 15_000);

    // the scheduler restarts against an empty Redis
    const scheduler = t.cluster.supervisor.list().find((p) => p.name === 'scheduler' && !p.exited)!;
    await t.cluster.supervisor.stop(scheduler);
    expect(await admin.flushall()).toBe('OK');
    t.cluster.startScheduler();

    const rebuilt = await eventually(
      'every workload record rebuilt',
      async () => {
        const now = (await workloads()).filter((w) => w.spec.id.startsWith('dur-'));
        return now.length === before.length && now.every((w) => w.observed?.state === 'running') ? now : null;
      },
      30_000,
    );
    for (const w of before) {
      const r = rebuilt.find((x) => x.spec.id === w.spec.id)!;
      expect(r).toMatchObject({ hostId: w.hostId, epoch: w.epoch, phase: 'running', desired: 'running', spec: w.spec });
      expect(r.recovered).toMatchObject({ from: w.hostId, epoch: w.epoch });
      expect(r.placement?.reason).toContain('after the cluster state was lost');
      const entries = await history(w.hostId!);
      expect(entries.find((e) => e.kind === 'rebuilt' && e.message.includes(w.spec.id))?.message).toContain(`rebuilt ${w.spec.id} from host ${w.hostId} after the cluster state was lost`);
      expect(entries.some((e) => e.kind === 'stale-copy')).toBe(false);
      expect(existsSync(containerRecord(w.hostId!, w.spec.id))).toBe(true);
    }
    const newGeneration = JSON.parse((await admin.get(`${t.cluster.keyPrefix}:cluster:generation`))!) as { id: string };
    expect(newGeneration.id).not.toBe(generation.id);
    await eventually('copies stamped with the new generation', async () => before.every((w) => generationOf(w.hostId!, w.spec.id) === newGeneration.id), 15_000);
    const copies = await runningCopies();
    for (const w of before) expect(copies.get(w.spec.id)).toEqual([w.hostId]);

    // HA protection came back with the records: the host of an HA workload dies, it restarts elsewhere
    const haHost = rebuilt.find((w) => w.spec.id === 'dur-a')!.hostId!;
    // ... and a workload created after the loss, deleted while its host is away, is still discarded
    const goner = spec('dur-goner', '10.77.0.134', { ha: { enabled: false, priority: 0 }, placement: { affinity: [], antiAffinity: [], hosts: [haHost] } });
    await createRunning([goner]);
    await eventually('goner stamped', async () => generationOf(haHost, 'dur-goner') === newGeneration.id, 15_000);
    await t.cluster.supervisor.stop(t.cluster.agent(haHost)!, 0);
    await t.lab.killHostProcesses(haHost);
    await eventually(`${haHost} down`, async () => (await t.cluster.get<{ state: string }>(`/v1/hosts/${haHost}`)).state === 'down', 30_000);
    const failover = await eventually(
      `the failover of ${haHost}`,
      async () => {
        const { failovers } = (await api('GET', '/v1/failovers')).body as { failovers: FailoverRecord[] };
        const f = failovers.find((x) => x.hostId === haHost);
        return f && f.state !== 'running' ? f : null;
      },
      60_000,
    );
    expect(failover.restarts.find((r) => r.workload === 'dur-a')).toMatchObject({ status: 'restarted' });
    const moved = await eventually(
      'dur-a running elsewhere',
      async () => {
        const w = await get('dur-a');
        return w.phase === 'running' && w.hostId !== haHost && w.observed?.state === 'running' ? w : null;
      },
      30_000,
    );
    const del = await api('DELETE', '/v1/workloads/dur-goner');
    expect(del.status, JSON.stringify(del.body)).toBe(202);
    await eventually('dur-goner deleted', async () => (await api('GET', '/v1/workloads/dur-goner')).status === 404, 30_000);

    // the host comes back: its copy of dur-a (superseded) and of dur-goner (deleted) are discarded, not rebuilt
    t.cluster.startAgent(haHost);
    await t.cluster.waitForHostsUp([haHost], 30_000);
    await eventually('the deleted and the superseded copies discarded', async () => !existsSync(containerRecord(haHost, 'dur-goner')) && !existsSync(containerRecord(haHost, 'dur-a')), 60_000);
    expect((await api('GET', '/v1/workloads/dur-goner')).status).toBe(404);
    expect((await get('dur-a')).hostId).toBe(moved.hostId);
    const kinds = (await history(haHost)).map((e) => e.kind);
    expect(kinds).toEqual(expect.arrayContaining(['rebuilt', 'stale-copy']));
    const copiesAfter = await runningCopies();
    for (const [id, hosts] of copiesAfter) expect(hosts, id).toHaveLength(1);
  }, 240_000);

  it('(c) Redis flushed under a running scheduler: it notices within a second and rebuilds the same way', async () => {
    const before = (await workloads()).filter((w) => w.spec.id.startsWith('dur-'));
    const generation = JSON.parse((await admin.get(`${t.cluster.keyPrefix}:cluster:generation`))!) as { id: string };
    await eventually('copies stamped', async () => before.every((w) => generationOf(w.hostId!, w.spec.id) === generation.id), 15_000);
    expect(await admin.flushall()).toBe('OK');
    const rebuilt = await eventually(
      'every workload record rebuilt',
      async () => {
        const now = (await workloads()).filter((w) => w.spec.id.startsWith('dur-'));
        return now.length === before.length && now.every((w) => w.observed?.state === 'running') ? now : null;
      },
      30_000,
    );
    expect(rebuilt.map((w) => [w.spec.id, w.hostId, w.epoch, w.spec.ha.enabled]).sort()).toEqual(before.map((w) => [w.spec.id, w.hostId, w.epoch, w.spec.ha.enabled]).sort());
    const copies = await runningCopies();
    for (const w of before) expect(copies.get(w.spec.id)).toEqual([w.hostId]);
  }, 120_000);
});
