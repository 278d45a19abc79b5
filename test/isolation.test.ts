import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FailoverRecord, HostHistoryEntry, HostView, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { eventually, http } from './helpers/cluster.ts';
import { InvariantChecker } from './helpers/invariants.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { expectTimersFire, workloadStats } from './helpers/workload.ts';

/**
 * Isolation is not failure (docs/failover.md): control-plane faults — every scheduler stopped, NATS
 * unreachable, one host cut off from the control plane but not from its storage — must not fence
 * or restart any HA workload: they keep running where they are, the same processes, their timers
 * firing. The lease is 3 s and hosts are down after 4.5 s here, so every fault lasts several
 * leases.
 */
describe.skipIf(skipLab())('isolation is not failure: control-plane faults fence nothing and restart nothing', () => {
  let t: LabCluster;
  const workloads = [
    { id: 'iso-a', address: '10.77.0.171' },
    { id: 'iso-b', address: '10.77.0.172' },
    { id: 'iso-c', address: '10.77.0.173' },
  ];

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2', 'h3'], [PROD], {
      FERRY_SUSPECT_AFTER_MS: '1500',
      FERRY_LEASE_MS: '3000',
      FERRY_DOWN_AFTER_MS: '4500',
      FERRY_JOB_LOCK_MS: '3000',
      FERRY_LEADER_TTL_MS: '3000',
    });
    t.cluster.startScheduler('scheduler-2'); // a standby replica: both are stopped below
    for (const w of workloads) {
      const spec: WorkloadSpecInput = {
        id: w.id,
        template: 'busybox',
        command: ['/usr/bin/ferry-workload', '--mem', '16', '--port', '7000'],
        resources: { vcpus: 0.25, memoryMiB: 64, diskMiB: 64 },
        networks: [{ network: PROD.name, address: w.address }],
        pool: 'shared',
        ha: { enabled: true, priority: 5 },
      };
      const res = await http(`${t.cluster.apiUrl}/v1/workloads`, { token: t.cluster.token, method: 'POST', body: spec });
      expect(res.status, JSON.stringify(res.body)).toBe(202);
    }
    for (const w of workloads) {
      await eventually(
        `${w.id} running`,
        async () => {
          const v = await t.cluster.get<WorkloadView>(`/v1/workloads/${w.id}`);
          return v.phase === 'running' && v.observed?.state === 'running';
        },
        60_000,
      );
    }
  }, 180_000);

  afterAll(async () => {
    await t?.close();
  });

  const history = async (host: string) => (await t.cluster.get<{ history: HostHistoryEntry[] }>(`/v1/hosts/${host}/history`)).history;

  /** Where each workload runs and as which process, seen from a host other than its own. */
  async function snapshot(): Promise<Map<string, { hostId: string; pid: number; epoch: number }>> {
    const out = new Map<string, { hostId: string; pid: number; epoch: number }>();
    for (const w of workloads) {
      const v = await t.cluster.get<WorkloadView>(`/v1/workloads/${w.id}`);
      const from = ['h1', 'h2', 'h3'].find((h) => h !== v.hostId)!;
      out.set(w.id, { hostId: v.hostId!, pid: (await workloadStats(t.lab, from, w.address)).pid, epoch: v.epoch });
    }
    return out;
  }

  /** After a fault: the same processes on the same hosts, timers firing, no fencing, no failover since `since`. */
  async function expectUntouched(before: Map<string, { hostId: string; pid: number; epoch: number }>, since: number): Promise<void> {
    await t.cluster.waitForHostsUp(['h1', 'h2', 'h3'], 30_000);
    const after = await snapshot();
    expect(after).toEqual(before);
    for (const w of workloads) await expectTimersFire(t.lab, after.get(w.id)!.hostId === 'h1' ? 'h2' : 'h1', w.address);
    for (const host of ['h1', 'h2', 'h3']) {
      const fenced = (await history(host)).filter((e) => e.kind === 'fencing' && e.at >= since);
      expect(fenced, `${host} fenced`).toEqual([]);
    }
    const { failovers } = await t.cluster.get<{ failovers: FailoverRecord[] }>('/v1/failovers');
    expect(failovers.filter((f) => f.detectedAt >= since)).toEqual([]);
  }

  it('every scheduler stopped for 20 s (SIGSTOP): no HA workload fenced or restarted, no host declared down on resume', async () => {
    const before = await snapshot();
    const since = Date.now();
    const checker = await InvariantChecker.start(t);
    const schedulers = t.cluster.supervisor.list().filter((p) => p.name.startsWith('scheduler') && !p.exited);
    expect(schedulers.length).toBe(2);
    for (const s of schedulers) process.kill(s.pid, 'SIGSTOP');
    await new Promise((resolve) => setTimeout(resolve, 20_000));
    for (const s of schedulers) process.kill(s.pid, 'SIGCONT');
    await new Promise((resolve) => setTimeout(resolve, 6_000)); // past down-after once more, reports flowing
    await expectUntouched(before, since);
    await checker.check();
    for (const host of ['h1', 'h2', 'h3']) {
      const states = (await history(host)).filter((e) => e.kind === 'state' && e.at >= since);
      expect(states.filter((e) => e.message.includes('→ down'))).toEqual([]);
    }
  }, 120_000);

  it('NATS unreachable for 10 s: no HA workload fenced or restarted', async () => {
    const before = await snapshot();
    const since = Date.now();
    const checker = await InvariantChecker.start(t);
    const nats = t.cluster.supervisor.list().find((p) => p.name === 'nats' && !p.exited)!;
    process.kill(nats.pid, 'SIGSTOP'); // up but answering nobody: reports and acknowledgements stop
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    process.kill(nats.pid, 'SIGCONT');
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    await expectUntouched(before, since);
    await checker.check();
  }, 120_000);

  it('a host cut off from the control plane but not from storage is isolated: its HA workloads stay, nothing restarts elsewhere', async () => {
    const before = await snapshot();
    const since = Date.now();
    const checker = await InvariantChecker.start(t);
    const host = before.get('iso-a')!.hostId;
    await t.lab.setConnected(host, false);
    // well past down-after: its peers see its storage heartbeat, so it is isolated, not down
    const isolated = await eventually(
      `${host} isolated`,
      async () => {
        const h = await t.cluster.get<HostView>(`/v1/hosts/${host}`);
        return h.isolated ? h : null;
      },
      20_000,
    );
    expect(isolated.state).toBe('suspect');
    await new Promise((resolve) => setTimeout(resolve, 8_000));
    expect((await t.cluster.get<HostView>(`/v1/hosts/${host}`)).state).toBe('suspect');
    expect((await history(host)).some((e) => e.at >= since && e.message.startsWith('isolated'))).toBe(true);
    await t.lab.setConnected(host, true);
    await expectUntouched(before, since);
    await checker.check();
  }, 120_000);
});
