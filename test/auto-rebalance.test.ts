import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlanRecord, WorkloadView } from '@ferry/protocol';
import { eventually, http } from './helpers/cluster.ts';
import { expectTimersFire } from './helpers/workload.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';

describe.skipIf(skipLab())('automatic rebalancing on the leader scheduler', () => {
  let t: LabCluster;

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2', 'h3'], [PROD], {
      FERRY_AUTO_REBALANCE: 'true',
      FERRY_REBALANCE_INTERVAL_MS: '1000',
      FERRY_REBALANCE_ROUNDS: '2',
      FERRY_REBALANCE_THRESHOLD: '0.01',
      FERRY_REBALANCE_MAX_MOVES: '4',
    });
  });

  afterAll(async () => {
    await t?.close();
  });

  const api = (method: string, path: string, body?: unknown) => http(`${t.cluster.apiUrl}${path}`, { token: t.cluster.token, method, body });
  const rebalancePlans = async () => ((await api('GET', '/v1/plans?kind=rebalance')).body as { plans: PlanRecord[] }).plans;

  it('evens out a lopsided cluster by itself, once, and then leaves it alone', async () => {
    for (const h of ['h2', 'h3']) expect((await api('POST', `/v1/hosts/${h}/maintenance`, {})).status).toBe(200);
    for (let i = 1; i <= 4; i++) {
      await api('POST', '/v1/workloads', {
        id: `a${i}`,
        template: 'busybox',
        command: ['/usr/bin/ferry-workload', '--mem', '16', '--port', '7000'],
        resources: { vcpus: 0.25, memoryMiB: 512, diskMiB: 64 },
        networks: [{ network: PROD.name, address: `10.77.0.${90 + i}` }],
        pool: 'local',
      });
    }
    await eventually(
      'all four running on h1',
      async () => {
        const { workloads } = (await api('GET', '/v1/workloads')).body as { workloads: WorkloadView[] };
        return workloads.length === 4 && workloads.every((w) => w.phase === 'running' && w.hostId === 'h1');
      },
      30_000,
    );
    // nothing can move while h2 and h3 are in maintenance: no plan yet
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(await rebalancePlans()).toEqual([]);
    for (const h of ['h2', 'h3']) await api('DELETE', `/v1/hosts/${h}/maintenance`);

    const plan = await eventually(
      'an automatic plan to finish',
      async () => {
        const [p] = await rebalancePlans();
        return p && ['completed', 'failed'].includes(p.state) ? p : null;
      },
      90_000,
    );
    expect(plan.state).toBe('completed');
    expect(plan.params.automatic).toBe(true);
    expect(plan.moves.length).toBeGreaterThan(0);
    const { workloads } = (await api('GET', '/v1/workloads')).body as { workloads: WorkloadView[] };
    expect(new Set(workloads.map((w) => w.hostId)).size).toBeGreaterThanOrEqual(2);
    expect(workloads.every((w) => w.phase === 'running')).toBe(true);
    // the moved workloads' timers still fire
    for (const move of plan.moves) {
      const address = workloads.find((w) => w.spec.id === move.workload)!.spec.networks[0]!.address;
      await expectTimersFire(t.lab, 'h1', address);
    }

    // settled: the moved workloads cool down and the rest is within the threshold — no flapping
    await new Promise((resolve) => setTimeout(resolve, 6000));
    expect((await rebalancePlans()).length).toBe(1);
  });
});
