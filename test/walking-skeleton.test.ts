import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { repoRoot } from '@ferry/deploy';
import { parseCpuInfo, parseMemInfo } from '@ferry/agent';
import { Queue } from 'bullmq';
import { HostStateEvent, QUEUES, queuePrefix, subjects, type HostListResponse, type HostView, type StatsResponse } from '@ferry/protocol';
import { eventually, http, startTestCluster, type TestCluster } from './helpers/cluster.ts';

const encoder = new TextEncoder();

describe('walking skeleton: capacity from real agents through NATS, scheduler and Redis to the API', () => {
  let t: TestCluster;
  const events: HostStateEvent[] = [];

  beforeAll(async () => {
    t = await startTestCluster({
      // mallory: a host with an identity of its own, which it abuses below
      hostIds: ['alpha', 'bravo', 'mallory'],
      schedulerEnv: { FERRY_SUSPECT_AFTER_MS: '1200', FERRY_DOWN_AFTER_MS: '2500', FERRY_LEASE_MS: '1500', FERRY_LIVENESS_CHECK_MS: '100' },
    });
    t.nc.subscribe(subjects.hostEvents, {
      callback: (_err, msg) => events.push(HostStateEvent.parse(JSON.parse(new TextDecoder().decode(msg.data)))),
    });
  });

  afterAll(async () => {
    await t?.close();
  });

  const host = (id: string) => t.cluster.get<HostView>(`/v1/hosts/${id}`);
  const stats = () => t.cluster.get<StatsResponse>('/v1/stats');

  it('shows a real agent with the real CPU, memory, pools and CRIU of this machine', async () => {
    const started = Date.now();
    t.cluster.startAgent('alpha', { reportIntervalMs: 250 });
    const list = await t.cluster.waitForHostsUp(['alpha'], 10_000);
    const seenAfterMs = Date.now() - started;
    expect(seenAfterMs).toBeLessThan(10_000);

    const alpha = list.hosts.find((h) => h.id === 'alpha')!;
    const cpu = parseCpuInfo(readFileSync('/proc/cpuinfo', 'utf8'));
    expect(alpha.capacity.cpu).toEqual(cpu);
    expect(alpha.capacity.memory.totalBytes).toBe(parseMemInfo(readFileSync('/proc/meminfo', 'utf8')).totalBytes);
    expect(alpha.capacity.memory.availableBytes).toBeGreaterThan(0);
    expect(alpha.capacity.pools.map((p) => [p.id, p.shared])).toEqual([
      ['local', false],
      ['shared', true],
    ]);
    for (const pool of alpha.capacity.pools) expect(pool.freeBytes).toBeGreaterThan(0);
    // The config names network prod on bridge fbr-prod, which this (non-lab) host does not have:
    // a network is reported only while its bridge exists.
    expect(alpha.capacity.networks).toEqual([]);
    // deploy/setup installs CRIU 4.2.1; this machine has uffd but no soft-dirty tracking.
    expect(alpha.capacity.criu?.version).toMatch(/^4\.\d+/);
    expect(alpha.capacity.criu?.usable).toBe(true);
    expect(alpha.capacity.agent.pid).toBe(t.cluster.agent('alpha')!.pid);

    const before = (await host('alpha')).capacity.seq;
    await eventually('the next reports', async () => (await host('alpha')).capacity.seq >= before + 2);
  });

  it('reports the CPU a host is configured to pose as', async () => {
    t.cluster.startAgent('bravo', {
      reportIntervalMs: 250,
      cpuOverride: { vendor: 'GenuineIntel', family: 6, model: 85, flags: ['fpu', 'sse2'] },
    });
    await t.cluster.waitForHostsUp(['bravo']);
    const bravo = await host('bravo');
    expect(bravo.capacity.cpu).toMatchObject({ vendor: 'GenuineIntel', family: 6, model: 85, flags: ['fpu', 'sse2'] });
  });

  it('marks a host that stops reporting suspect, then down, and up again when it returns', async () => {
    const agent = t.cluster.agent('bravo')!;
    await t.cluster.supervisor.stop(agent, 0); // SIGTERM with no grace: a crash as far as reports go
    await eventually('bravo suspect', async () => (await host('bravo')).state === 'suspect');
    const down = await eventually('bravo down', async () => {
      const h = await host('bravo');
      return h.state === 'down' ? h : null;
    });
    expect(down.lastReportAgeMs).toBeGreaterThan(2500);
    const mine = () => events.filter((e) => e.hostId === 'bravo').map((e) => `${e.from}->${e.to}`);
    expect(mine()).toEqual(['null->up', 'up->suspect', 'suspect->down']);
    // The other host kept reporting throughout.
    expect((await host('alpha')).state).toBe('up');

    t.cluster.startAgent('bravo', { reportIntervalMs: 250 });
    await t.cluster.waitForHostsUp(['bravo']);
    await eventually('the down->up event', async () => mine().includes('down->up'));
  });

  it('rejects and counts every kind of malformed report, logs once per host, and keeps valid hosts updating', async () => {
    const valid = (await host('alpha')).capacity;
    const before = await stats();
    const alphaSeq = valid.seq;
    const sends: Array<[string, Uint8Array | string]> = [
      // wrong types
      [subjects.capacity('mallory'), JSON.stringify({ ...valid, hostId: 'mallory', memory: { totalBytes: 'lots', availableBytes: -1 } })],
      [subjects.capacity('mallory'), JSON.stringify({ ...valid, hostId: 'mallory', seq: 'one' })],
      // missing fields
      [subjects.capacity('mallory'), JSON.stringify({ v: 1, hostId: 'mallory' })],
      [subjects.capacity('mallory'), JSON.stringify({ ...valid, hostId: 'mallory', cpu: undefined })],
      // oversized
      [subjects.capacity('mallory'), JSON.stringify({ ...valid, hostId: 'mallory', padding: 'x'.repeat(600_000) })],
      // a body naming another host than its subject (here: impersonating alpha)
      [subjects.capacity('mallory'), JSON.stringify({ ...valid, seq: 1_000_000 })],
      // not JSON at all
      [subjects.capacity('mallory'), new Uint8Array([0xff, 0xfe, 0x00, 0x7b])],
      [subjects.capacity('mallory'), 'null'],
    ];
    // mallory speaks with its own NATS identity: NATS lets it publish on its own subject only
    const mallory = await t.cluster.connectNats('agent-mallory');
    for (let round = 0; round < 3; round++) {
      for (const [subject, body] of sends) mallory.publish(subject, typeof body === 'string' ? encoder.encode(body) : body);
    }
    await mallory.flush();
    await mallory.close();

    const expected = { SCHEMA: 3 * 5, OVERSIZED: 3, SUBJECT_MISMATCH: 3, NOT_JSON: 3, BAD_SUBJECT: 0 };
    // null parses as JSON but is no report: it counts under SCHEMA (5 per round: 2 wrong types, 2 missing, null).
    const after = await eventually('the rejections to be counted', async () => {
      const s = await stats();
      const grew = Object.entries(expected).every(
        ([reason, n]) => s.capacityReports.rejected[reason as keyof typeof expected] - before.capacityReports.rejected[reason as keyof typeof expected] === n,
      );
      return grew ? s : null;
    });
    // valid reports kept being accepted meanwhile (counters reach Redis in batches: wait for the next)
    await eventually('valid reports counted meanwhile', async () => (await stats()).capacityReports.accepted > before.capacityReports.accepted);
    expect(after.capacityReports.rejected.BAD_SUBJECT).toBe(before.capacityReports.rejected.BAD_SUBJECT);

    // No host was created or changed by any of it.
    const list = await t.cluster.get<HostListResponse>('/v1/hosts');
    expect(list.hosts.map((h) => h.id).sort()).toEqual(['alpha', 'bravo']);
    await eventually('alpha to keep updating', async () => (await host('alpha')).capacity.seq > alphaSeq + 2);
    expect((await host('alpha')).capacity.seq).toBeLessThan(1_000_000);
    expect(t.cluster.supervisor.list().find((p) => p.name === 'scheduler')!.exited).toBe(false);

    // 24 rejected messages, but at most one log line per host per minute: mallory's.
    await sleep(300);
    const logLines = readFileSync(join(t.stateDir, 'logs', 'scheduler.log'), 'utf8')
      .split('\n')
      .filter((line) => line.includes('capacity report rejected'));
    expect(logLines).toHaveLength(1);
    expect(logLines.some((line) => line.includes('"hostId":"mallory"'))).toBe(true);
  });

  it('answers 401 without or with a wrong token, 400 on bad params, 404 on an unknown host, all as JSON', async () => {
    const url = t.cluster.apiUrl;
    const noToken = await http(`${url}/v1/hosts`);
    expect(noToken.status).toBe(401);
    expect(noToken.body).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringContaining('Bearer') });
    expect(noToken.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await http(`${url}/v1/hosts/alpha`, { token: 'not-the-token-at-all' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.code).toBe('UNAUTHORIZED');

    const badId = await http(`${url}/v1/hosts/Not_A_Host!`, { token: t.cluster.token });
    expect(badId.status).toBe(400);
    expect(badId.body.code).toBe('BAD_REQUEST');
    expect(badId.body.message).toContain('params.id');
    expect(badId.body.details.problems[0].field).toBe('params.id');

    const badState = await http(`${url}/v1/hosts?state=sideways`, { token: t.cluster.token });
    expect(badState.status).toBe(400);
    expect(badState.body.message).toContain('query.state');
    const unknownParam = await http(`${url}/v1/hosts?colour=blue`, { token: t.cluster.token });
    expect(unknownParam.status).toBe(400);
    expect(unknownParam.body.message).toContain('colour');

    const missing = await http(`${url}/v1/hosts/no-such-host`, { token: t.cluster.token });
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ code: 'NOT_FOUND', message: 'no host no-such-host', details: { id: 'no-such-host' } });

    const filtered = await http(`${url}/v1/hosts?state=up`, { token: t.cluster.token });
    expect(filtered.status).toBe(200);
    expect(filtered.body.hosts.every((h: HostView) => h.state === 'up')).toBe(true);

    const health = await http(`${url}/healthz`);
    expect(health).toMatchObject({ status: 200, body: { status: 'ok', redis: true } });
  });

  it('fails malformed workload jobs on the real queue without harming the worker', async () => {
    const connection = t.cluster.redisAdmin({ maxRetriesPerRequest: null });
    const queue = new Queue(QUEUES.workloads, { connection, prefix: queuePrefix(t.cluster.keyPrefix) });
    try {
      const bad = [
        await queue.add('create', { workloadId: 'Not A Name!', requestedAt: 1 }),
        await queue.add('create', { workloadId: 'w1', requestedAt: 1, rm: '-rf /' }),
        await queue.add('explode', { workloadId: 'w1', requestedAt: 1 }),
      ];
      for (const job of bad) {
        await eventually(`job ${job.name} to fail`, async () => (await job.getState()) === 'failed');
        const failed = await queue.getJob(job.id!);
        expect(failed!.failedReason).toMatch(/malformed job/);
        expect(failed!.attemptsMade).toBe(1); // unrecoverable: not retried
      }
      // The worker is still there: a valid job right after is processed.
      const ok = await queue.add('destroy', { workloadId: 'never-existed', requestedAt: Date.now() });
      await eventually('the valid job', async () => (await ok.getState()) === 'completed');
      expect((await queue.getJob(ok.id!))!.returnvalue).toEqual({ workloadId: 'never-existed', phase: 'destroyed', hostId: null });
    } finally {
      await queue.close();
      connection.disconnect();
    }
  });

  it('refuses to start an agent with a bad config, naming the field', async () => {
    const configFile = join(t.stateDir, 'bad-agent.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(configFile, JSON.stringify({ hostId: 'charlie', pools: [{ id: 'local', path: 'relative/dir' }], reportIntervalMs: 5 }));
    const run = await execa(process.execPath, ['--import', 'tsx', 'services/agent/src/main.ts', '--config', configFile], {
      cwd: repoRoot,
      reject: false,
      timeout: 30_000,
      env: { FERRY_NATS_URL: t.cluster.natsUrl },
    });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('pools.0.path: must be an absolute path');
    expect(run.stderr).toContain('reportIntervalMs');
    const envRun = await execa(process.execPath, ['--import', 'tsx', 'services/agent/src/main.ts'], {
      cwd: repoRoot,
      reject: false,
      timeout: 30_000,
      env: { FERRY_HOST_ID: 'Bad Host' },
    });
    expect(envRun.exitCode).toBe(2);
    expect(envRun.stderr).toContain('hostId');
    expect(envRun.stderr).toContain('from FERRY_HOST_ID');
    // no NATS identity, no CA: there is no anonymous or plain-text mode to fall back to
    expect(envRun.stderr).toContain('natsSeedFile');
    expect(envRun.stderr).toContain('natsCaFile');
  });
});
