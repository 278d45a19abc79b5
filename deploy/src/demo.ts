import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkloadAccepted, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import type { LocalCluster } from './cluster.ts';

export const DEMO_NETWORK = { name: 'prod', subnet: '10.77.0.0/24', bridge: 'fbr-prod' };

/**
 * Small HA-protected test workloads (two per host by default, spread by placement), each serving
 * its TCP counter on the demo network, with their root filesystems on the shared pool so that a
 * failover can restart them elsewhere.
 */
export function demoWorkloads(hostIds: string[], perHost = 2): WorkloadSpecInput[] {
  return hostIds.flatMap((_hostId, h) =>
    Array.from({ length: perHost }, (_, n) => ({
      id: `demo-${h * perHost + n + 1}`,
      template: 'busybox',
      command: ['/usr/bin/ferry-workload', '--mem', '32', '--dirty', '1', '--port', '7000'],
      resources: { vcpus: 0.5, memoryMiB: 128, diskMiB: 64 },
      networks: [{ network: DEMO_NETWORK.name, address: `10.77.0.${10 * (h + 1) + n + 1}` }],
      pool: 'shared',
      ha: { enabled: true, priority: 10 },
      labels: { app: 'demo' },
    })),
  );
}

/**
 * Debian 12 VPSs from the debian-12 OS template (deploy/setup builds it): each boots its own init,
 * which starts sshd and nginx, on the demo network — what a customer of a VPS host gets. HA, on
 * the shared pool, like the test workloads.
 */
export function demoVpss(count = 1): WorkloadSpecInput[] {
  return Array.from({ length: count }, (_, n) => ({
    id: `vps-${n + 1}`,
    template: 'debian-12',
    command: ['/sbin/init'],
    resources: { vcpus: 0.5, memoryMiB: 256, diskMiB: 1024 },
    networks: [{ network: DEMO_NETWORK.name, address: `10.77.0.${100 + n + 1}` }],
    pool: 'shared',
    ha: { enabled: true, priority: 20 },
    labels: { app: 'vps' },
  }));
}

/**
 * `npm start` keeps the cluster's state (Redis persists in the state directory) but builds a new
 * lab each time, and the previous lab's containers went with it. Records of workloads on these
 * hosts that no host reports (checked after every host's first report) are deleted, so the demo
 * can create them again; every other record (tokens, audit, plans, migrations, history) stays.
 * Returns the ids deleted.
 */
export async function dropWorkloadsOfPreviousLab(cluster: LocalCluster, hostIds: string[], timeoutMs = 60_000): Promise<string[]> {
  const workloads = await cluster.list<WorkloadView>('/v1/workloads', 'workloads');
  const gone = workloads.filter((w) => w.hostId !== null && hostIds.includes(w.hostId) && w.observed === null && w.phase !== 'destroying').map((w) => w.spec.id);
  for (const id of gone) await cluster.request('DELETE', `/v1/workloads/${id}`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = (await cluster.list<WorkloadView>('/v1/workloads', 'workloads')).filter((w) => gone.includes(w.spec.id));
    if (left.length === 0) return gone;
    if (Date.now() > deadline) throw new Error(`records of the previous lab's workloads not deleted within ${timeoutMs} ms: ${left.map((w) => w.spec.id).join(', ')}`);
    await sleep(250);
  }
}

/** Creates the workloads through the API (those not there already) and waits until every one runs. */
export async function createAndWaitRunning(cluster: LocalCluster, specs: WorkloadSpecInput[], timeoutMs = 120_000): Promise<WorkloadView[]> {
  const existing = new Set((await cluster.list<WorkloadView>('/v1/workloads', 'workloads')).map((w) => w.spec.id));
  for (const spec of specs) if (!existing.has(spec.id)) await cluster.request<WorkloadAccepted>('POST', '/v1/workloads', spec);
  const ids = new Set(specs.map((s) => s.id));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const workloads = await cluster.list<WorkloadView>('/v1/workloads', 'workloads');
    const mine = workloads.filter((w) => ids.has(w.spec.id));
    const failed = mine.filter((w) => w.phase === 'failed');
    if (failed.length > 0) throw new Error(`workloads failed: ${failed.map((w) => `${w.spec.id}: ${w.error?.message}`).join('; ')}`);
    if (mine.length === ids.size && mine.every((w) => w.phase === 'running' && w.observed?.state === 'running' && w.observed.usage)) return mine;
    if (Date.now() > deadline) throw new Error(`workloads not running within ${timeoutMs} ms: ${mine.map((w) => `${w.spec.id}=${w.phase}`).join(', ')}`);
    await sleep(250);
  }
}
