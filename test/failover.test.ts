import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import type { FailoverRecord, HostHistoryEntry, HostView, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { isRunning } from '@ferry/deploy';
import { eventually, http } from './helpers/cluster.ts';
import { InvariantChecker, runsOf } from './helpers/invariants.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { expectTimersFire } from './helpers/workload.ts';

describe.skipIf(skipLab())('failover: leases, fencing, restarts elsewhere, never two copies', () => {
  let t: LabCluster;
  let redis: Redis;

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2', 'h3', 'h4'], [PROD], {
      FERRY_SUSPECT_AFTER_MS: '1500',
      FERRY_LEASE_MS: '3000',
      FERRY_DOWN_AFTER_MS: '4500',
      FERRY_JOB_LOCK_MS: '3000',
      FERRY_LEADER_TTL_MS: '3000',
    });
    t.cluster.startScheduler('scheduler-2'); // a standby replica
    redis = t.cluster.redisAdmin();
  });

  afterAll(async () => {
    redis?.disconnect();
    await t?.close();
  });

  const api = (method: string, path: string, body?: unknown) => http(`${t.cluster.apiUrl}${path}`, { token: t.cluster.token, method, body });
  const get = (id: string) => t.cluster.get<WorkloadView>(`/v1/workloads/${id}`);
  const talk = async (fromHost: string, address: string, line: string) => (await t.lab.exec(fromHost, 'busybox', ['nc', '-w', '2', address, '7000'], { input: `${line}\nquit\n` })).stdout.trim();
  const spec = (id: string, address: string, over: Partial<WorkloadSpecInput> = {}): WorkloadSpecInput => ({
    id,
    template: 'busybox',
    command: ['/usr/bin/ferry-workload', '--mem', '16', '--port', '7000', '--tick-log', '/var/log/ticks.log'],
    resources: { vcpus: 0.25, memoryMiB: 128, diskMiB: 64 },
    networks: [{ network: PROD.name, address }],
    pool: 'shared',
    ha: { enabled: true, priority: 5 },
    ...over,
  });
  /** Creates workloads and live-migrates to `host` those that placement put elsewhere. */
  const createOn = async (host: string, specs: WorkloadSpecInput[]) => {
    for (const s of specs) {
      const res = await api('POST', '/v1/workloads', s);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
    }
    for (const s of specs) {
      const w = await eventually(
        `${s.id} running`,
        async () => {
          const current = await get(s.id);
          if (current.phase === 'failed') throw new Error(current.error?.message);
          return current.phase === 'running' && current.observed?.state === 'running' ? current : null;
        },
        30_000,
      );
      if (w.hostId === host) continue;
      const res = await api('POST', `/v1/workloads/${s.id}/migrate`, { destination: host });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const { migration } = res.body as { migration: { id: string } };
      await eventually(
        `${s.id} moved to ${host}`,
        async () => {
          const m = (await api('GET', `/v1/migrations/${migration.id}`)).body as { state: string };
          if (m.state === 'rolled-back') throw new Error(`migration of ${s.id} rolled back`);
          return m.state === 'completed' && (await get(s.id)).phase === 'running';
        },
        60_000,
      );
    }
  };
  const failoverOf = (host: string) =>
    eventually(
      `a finished failover of ${host}`,
      async () => {
        const { failovers } = (await api('GET', '/v1/failovers')).body as { failovers: FailoverRecord[] };
        const f = failovers.find((x) => x.hostId === host);
        return f && f.state !== 'running' ? f : null;
      },
      90_000,
    );
  const history = async (host: string) => ((await api('GET', `/v1/hosts/${host}/history`)).body as { history: HostHistoryEntry[] }).history;
  const ticksFile = (id: string) => join(t.lab.sharedPool, 'containers', id, 'rootfs', 'var', 'log', 'ticks.log');

  it('(a, d) a host dies: its HA workloads run elsewhere from shared storage, even when the leader dies mid-way; the rest is reported', async () => {
    await createOn('h1', [
      spec('ha-a', '10.77.0.120', { ha: { enabled: true, priority: 9 } }),
      spec('ha-b', '10.77.0.121', { ha: { enabled: true, priority: 3 } }),
      spec('ha-local', '10.77.0.122', { pool: 'local', ha: { enabled: true, priority: 1 } }),
      spec('plain', '10.77.0.123', { ha: { enabled: false, priority: 0 } }),
    ]);
    const linesBefore = readFileSync(ticksFile('ha-a'), 'utf8').split('\n').length;
    const epochBefore = Object.fromEntries(await Promise.all(['ha-a', 'ha-b'].map(async (id) => [id, (await get(id)).epoch] as const)));
    const checker = await InvariantChecker.start(t);
    const killedAt = Date.now();
    // the host dies: agent, containers and links
    await t.cluster.supervisor.stop(t.cluster.agent('h1')!, 0);
    await t.lab.killHostProcesses('h1');
    await t.lab.setConnected('h1', false);

    // kill the leader as soon as the failover has started: the standby must finish it
    const started = await eventually(
      'the failover to start',
      async () => {
        const { failovers } = (await api('GET', '/v1/failovers')).body as { failovers: FailoverRecord[] };
        return failovers.find((f) => f.hostId === 'h1') ?? null;
      },
      30_000,
    );
    expect(started.restarts.map((r) => r.workload)).toEqual(['ha-a', 'ha-b', 'ha-local']); // priority order
    const leaderPid = Number((await redis.get(`${t.cluster.keyPrefix}:leader`))!.split('.')[0]);
    const leader = t.cluster.supervisor.list().find((p) => p.pid === leaderPid && !p.exited)!;
    expect(leader).toBeTruthy();
    await t.cluster.supervisor.stop(leader, 0);

    const failover = await failoverOf('h1');
    expect(failover.state).toBe('completed');
    const byId = Object.fromEntries(failover.restarts.map((r) => [r.workload, r]));
    expect(byId['ha-a']).toMatchObject({ status: 'restarted', epoch: epochBefore['ha-a']! + 1 });
    expect(byId['ha-b']).toMatchObject({ status: 'restarted', epoch: epochBefore['ha-b']! + 1 });
    expect(byId['ha-local']).toMatchObject({ status: 'unplaceable' });
    expect(failover.unrecoverable).toEqual([{ workload: 'ha-local', reason: expect.stringContaining('local pool local of h1') }]);
    expect(failover.unprotected).toEqual(['plain']);

    for (const [id, address] of [
      ['ha-a', '10.77.0.120'],
      ['ha-b', '10.77.0.121'],
    ] as const) {
      const w = await eventually(`${id} running again`, async () => {
        const current = await get(id);
        return current.phase === 'running' ? current : null;
      });
      expect(w.epoch).toBe(epochBefore[id]! + 1);
      expect(['h2', 'h3', 'h4']).toContain(w.hostId);
      await eventually(`${id} answering on ${w.hostId}`, async () => /^\d+$/.test(await talk('h2', address, 'get')), 20_000);
    }
    console.log(`failover of h1: ${((Date.now() - killedAt) / 1000).toFixed(1)} s from death to answering (lease 3 s, down after 4.5 s)`);
    // state from shared storage: the tick log goes on after what the dead host wrote
    await eventually('new ticks', async () => readFileSync(ticksFile('ha-a'), 'utf8').split('\n').length > linesBefore + 50);
    expect(runsOf(ticksFile('ha-a')).overlaps).toEqual([]);
    expect((await history('h1')).map((e) => e.kind)).toEqual(expect.arrayContaining(['state', 'failover', 'restart', 'unrecoverable']));
    expect((await get('ha-local')).hostId).toBe('h1'); // reported, not dropped
    await checker.check();
  }, 240_000);

  it('(b, c) a host cut off from the control plane and from storage fences itself before anything restarts elsewhere, and its stale copies are discarded when it returns', async () => {
    await createOn('h2', [spec('split', '10.77.0.130', { ha: { enabled: true, priority: 5 } })]);
    const { epoch } = await get('split');
    await eventually('h2 reporting split', async () => (await t.cluster.get<HostView>('/v1/hosts/h2')).capacity.containers.find((c) => c.id === 'split' && c.epoch === epoch));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const checker = await InvariantChecker.start(t);
    // the agent lives on, cut off from everything: cut off from the control plane only, it would
    // be isolated, not failed (test/isolation.test.ts)
    await t.lab.setConnected('h2', false);
    await t.lab.setStorageConnected('h2', false);

    const failover = await failoverOf('h2');
    const restart = failover.restarts.find((r) => r.workload === 'split')!;
    expect(restart).toMatchObject({ status: 'restarted', epoch: epoch + 1 });
    expect(['h3', 'h4']).toContain(restart.to);
    await eventually('split answering on its new host', async () => /^\d+$/.test(await talk(restart.to!, '10.77.0.130', 'get')), 20_000);
    await expectTimersFire(t.lab, restart.to!, '10.77.0.130');

    await t.lab.setStorageConnected('h2', true);
    await t.lab.setConnected('h2', true);
    // it tells what it did while cut off: fencing, before the restart elsewhere
    const fenced = await eventually('the fencing report', async () => (await history('h2')).find((e) => e.kind === 'fencing'), 30_000);
    expect((fenced.data as { containers: string[] }).containers).toContain('split');
    expect(fenced.at).toBeLessThan(restart.at!);
    // its copy at epoch 1 is discarded, never resumed; the root filesystem (shared) stays for the owner
    await eventually('the stale copy gone from h2', async () => !(await t.cluster.get<HostView>('/v1/hosts/h2')).capacity.containers.some((c) => c.id === 'split'), 30_000);
    expect((await history('h2')).some((e) => e.kind === 'stale-copy')).toBe(true);
    expect(existsSync(ticksFile('split'))).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // one copy at any moment: the runs in the shared tick log never overlap
    const { runs, overlaps } = runsOf(ticksFile('split'));
    expect(overlaps).toEqual([]);
    expect(runs.length).toBe(2);
    expect(runs[0]!.to).toBeLessThan(runs[1]!.from);
    expect((await get('split')).hostId).toBe(restart.to);
    await checker.check();
  }, 240_000);

  it('(b) the agent alone dies (containers alive, links up): its fence guard fences before the restart elsewhere', async () => {
    await createOn('h3', [spec('guarded', '10.77.0.150', { ha: { enabled: true, priority: 5 } })]);
    const { epoch } = await get('guarded');
    await eventually('h3 reporting guarded', async () => (await t.cluster.get<HostView>('/v1/hosts/h3')).capacity.containers.find((c) => c.id === 'guarded' && c.epoch === epoch));
    const guardPid = t.lab.fenceGuardPid('h3');
    expect(guardPid).not.toBeNull();
    const checker = await InvariantChecker.start(t);
    await t.cluster.supervisor.stop(t.cluster.agent('h3')!, 0); // SIGKILL: nothing of the agent runs any more

    const failover = await failoverOf('h3');
    const restart = failover.restarts.find((r) => r.workload === 'guarded')!;
    expect(restart).toMatchObject({ status: 'restarted', epoch: epoch + 1 });
    await eventually('guarded answering on its new host', async () => /^\d+$/.test(await talk(restart.to!, '10.77.0.150', 'get')), 20_000);
    await expectTimersFire(t.lab, restart.to!, '10.77.0.150');

    // a new agent keeps the guard that watched while no agent ran, and reports what it did
    const agent = t.cluster.startAgent('h3');
    await t.cluster.waitForHostsUp(['h3'], 30_000);
    expect(t.lab.fenceGuardPid('h3')).toBe(guardPid);
    const fenced = await eventually("the guard's fencing report", async () => (await history('h3')).find((e) => e.kind === 'fencing'), 30_000);
    expect(fenced.data).toMatchObject({ by: 'guard', action: 'stop', containers: expect.arrayContaining(['guarded']) });
    expect(fenced.at).toBeLessThan(restart.at!);
    await eventually('the stale copy gone from h3', async () => !(await t.cluster.get<HostView>('/v1/hosts/h3')).capacity.containers.some((c) => c.id === 'guarded'), 30_000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const { runs, overlaps } = runsOf(ticksFile('guarded'));
    expect(overlaps).toEqual([]);
    expect(runs.length).toBe(2);
    expect(runs[0]!.to).toBeLessThan(runs[1]!.from);
    console.log(`fence guard: last tick on h3 ${((runs[1]!.from - runs[0]!.to) / 1000).toFixed(0)} ms before the first on ${restart.to}`);
    expect(agent.exited).toBeFalsy();
    await checker.check();
  }, 240_000);

  it('a partitioned host that does not fence: its copy, superseded meanwhile, stops within a report of its return', async () => {
    // fencing fails (fence action none): the cut-off host keeps running its copy while the
    // cluster restarts the workload elsewhere — the case level-triggered reconciliation is for
    await t.cluster.supervisor.stop(t.cluster.agent('h2')!);
    t.cluster.startAgent('h2', { env: { FERRY_FENCE_ACTION: 'none' } });
    await t.cluster.waitForHostsUp(['h2'], 30_000);
    await createOn('h2', [spec('unfenced', '10.77.0.160', { ha: { enabled: true, priority: 5 } })]);
    const { epoch } = await get('unfenced');
    const reported = await eventually('h2 reporting unfenced', async () =>
      (await t.cluster.get<HostView>('/v1/hosts/h2')).capacity.containers.find((c) => c.id === 'unfenced' && c.epoch === epoch && c.pid),
    );
    const stalePid = reported.pid!;
    // every HA workload of h2 runs twice while it is cut off (fencing off), not only this one
    const onH2 = (await t.cluster.get<{ workloads: WorkloadView[] }>('/v1/workloads')).workloads.filter((w) => w.hostId === 'h2').map((w) => w.spec.id);
    const checker = await InvariantChecker.start(t);
    // it runs a while, settled, before the cut: several reports show it in line with its record
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const failoversBefore = ((await api('GET', '/v1/failovers')).body as { failovers: FailoverRecord[] }).failovers.length;
    await t.lab.setConnected('h2', false);
    await t.lab.setStorageConnected('h2', false); // its storage heartbeat stops: the cluster may declare it failed

    const failover = await eventually(
      'the failover of h2',
      async () => {
        const { failovers } = (await api('GET', '/v1/failovers')).body as { failovers: FailoverRecord[] };
        const f = failovers.find((x) => x.hostId === 'h2' && x.restarts.some((r) => r.workload === 'unfenced'));
        return failovers.length > failoversBefore && f && f.state !== 'running' ? f : null;
      },
      90_000,
    );
    const restart = failover.restarts.find((r) => r.workload === 'unfenced')!;
    expect(restart).toMatchObject({ status: 'restarted', epoch: epoch + 1 });
    await eventually('unfenced answering on its new host', async () => /^\d+$/.test(await talk(restart.to!, '10.77.0.160', 'get')), 20_000);
    expect(isRunning(stalePid)).toBe(true); // not fenced: two copies while h2 is cut off

    const healedAt = Date.now();
    await t.lab.setStorageConnected('h2', true);
    await t.lab.setConnected('h2', true);
    let goneAt = 0;
    await eventually('the stale copy to stop', async () => !isRunning(stalePid) && (goneAt = Date.now()), 60_000, 20);
    const back = await eventually('h2 heard from again', async () => (await history('h2')).find((e) => e.kind === 'state' && e.at >= healedAt && e.message.includes('→ up')));
    // the first report after its return is enough: the copy is stopped within one report interval
    // (500 ms here) of it, with room for a loaded CI machine
    console.log(`unfenced: host back ${back.at - healedAt} ms after the heal, stale copy stopped ${goneAt - back.at} ms after that`);
    expect(goneAt - back.at).toBeLessThan(1_500);
    await eventually('the stale copy discarded from h2', async () => !(await t.cluster.get<HostView>('/v1/hosts/h2')).capacity.containers.some((c) => c.id === 'unfenced'), 30_000);
    expect((await history('h2')).some((e) => e.kind === 'stale-copy' && e.message.includes('unfenced'))).toBe(true);
    expect(await get('unfenced')).toMatchObject({ hostId: restart.to, epoch: epoch + 1, phase: 'running' });
    await expectTimersFire(t.lab, restart.to!, '10.77.0.160');
    // the old copy's last tick in the shared log came no later than its stop
    // (its lines are those that continue its count from 1; the new copy counts from 1 again, far behind)
    let oldTick = 0;
    let oldLastMs = 0;
    for (const line of readFileSync(ticksFile('unfenced'), 'utf8').trim().split('\n')) {
      const [us, tick] = line.split(' ').map(Number) as [number, number];
      if (tick === oldTick + 1) [oldTick, oldLastMs] = [tick, us / 1000];
    }
    expect(oldTick).toBeGreaterThan(100);
    expect(oldLastMs).toBeLessThanOrEqual(goneAt + 50);

    await t.cluster.supervisor.stop(t.cluster.agent('h2')!);
    t.cluster.startAgent('h2');
    await t.cluster.waitForHostsUp(['h2'], 30_000);
    // two copies of h2's workloads on purpose (fencing off); none of anything else
    await checker.check({ duplicatesAllowed: onH2 });
  }, 240_000);

  it('(e) not enough room: higher priorities are placed first, the rest is reported with reasons', async () => {
    await createOn('h2', [
      spec('big-1', '10.77.0.142', { ha: { enabled: true, priority: 9 }, resources: { vcpus: 0.25, memoryMiB: 7000, diskMiB: 64 } }),
      spec('big-2', '10.77.0.143', { ha: { enabled: true, priority: 6 }, resources: { vcpus: 0.25, memoryMiB: 7000, diskMiB: 64 } }),
      spec('big-3', '10.77.0.144', { ha: { enabled: true, priority: 1 }, resources: { vcpus: 0.25, memoryMiB: 7000, diskMiB: 64 } }),
    ]);
    const hosts = (await t.cluster.get<{ hosts: HostView[] }>('/v1/hosts')).hosts;
    const { workloads } = (await api('GET', '/v1/workloads')).body as { workloads: WorkloadView[] };
    const allocated = (h: string) => workloads.filter((w) => w.hostId === h).reduce((s, w) => s + w.spec.resources.memoryMiB, 0);
    const total = (h: string) => Math.floor(hosts.find((x) => x.id === h)!.capacity.memory.totalBytes / 2 ** 20);
    // h3 and h4 get fillers that leave each room for one 7000 MiB workload, not two
    for (const [h, address] of [
      ['h3', '10.77.0.140'],
      ['h4', '10.77.0.141'],
    ] as const) {
      const filler = spec(`fill-${h}`, address, {
        ha: { enabled: false, priority: 0 },
        pool: 'local',
        resources: { vcpus: 0.25, memoryMiB: total(h) - allocated(h) - 7000 - 2000, diskMiB: 64 },
        placement: { affinity: [], antiAffinity: [], hosts: [h] },
      });
      expect((await api('POST', '/v1/workloads', filler)).status).toBe(202);
      await eventually(`${filler.id} running`, async () => (await get(filler.id)).phase === 'running', 30_000);
    }
    const checker = await InvariantChecker.start(t);
    // cut off from the control plane and from storage: failed, not only isolated
    await t.lab.setConnected('h2', false);
    await t.lab.setStorageConnected('h2', false);
    const failover = await eventually(
      'the second failover of h2',
      async () => {
        const { failovers } = (await api('GET', '/v1/failovers')).body as { failovers: FailoverRecord[] };
        const f = failovers.find((x) => x.hostId === 'h2' && x.restarts.some((r) => r.workload === 'big-1'));
        return f && f.state !== 'running' ? f : null;
      },
      90_000,
    );
    const status = Object.fromEntries(failover.restarts.map((r) => [r.workload, r.status]));
    expect(status).toMatchObject({ 'big-1': 'restarted', 'big-2': 'restarted', 'big-3': 'unplaceable' });
    expect(failover.restarts.find((r) => r.workload === 'big-3')!.reason).toContain('MEMORY_INSUFFICIENT');
    await t.lab.setStorageConnected('h2', true);
    await t.lab.setConnected('h2', true);
    await checker.check({ recoverMs: 60_000 });
  }, 240_000);
});
