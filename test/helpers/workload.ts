import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'vitest';
import type { Lab } from '@ferry/deploy';
import type { FailoverRecord, HostHistoryEntry, MigrationRecord, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { eventually, http } from './cluster.ts';
import { PROD, type LabCluster } from './lab.ts';

/** What ferry-workload answers to `stats`. */
export interface WorkloadStats {
  counter: number;
  /** timerfd expirations (every 10 ms) */
  ticks: number;
  /** POSIX timer (timer_create) signals, every 20 ms */
  posixTicks: number;
  /** setitimer(ITIMER_REAL) signals, every 20 ms */
  itimerTicks: number;
  uptimeMs: number;
  maxGapUs: number;
  pid: number;
}

/** One request line to ferry-workload at address, sent from inside a lab host. */
export async function talk(lab: Lab, fromHost: string, address: string, line: string): Promise<string> {
  const r = await lab.exec(fromHost, 'busybox', ['nc', '-w', '3', address, '7000'], { input: `${line}\nquit\n` });
  return r.stdout.trim();
}

export async function workloadStats(lab: Lab, fromHost: string, address: string): Promise<WorkloadStats> {
  return JSON.parse(await talk(lab, fromHost, address, 'stats')) as WorkloadStats;
}

/**
 * The workload's three kinds of timer still fire: a moved or restarted workload must not merely
 * run and answer, its event loop has to wake. Over 600 ms the 10 ms timerfd must tick at least 15
 * times and the 20 ms POSIX and interval timers at least 8 times each (loose bounds: a loaded CI
 * machine delays timers, it does not stop them).
 */
export async function expectTimersFire(lab: Lab, fromHost: string, address: string): Promise<WorkloadStats> {
  const before = await workloadStats(lab, fromHost, address);
  await sleep(600);
  const after = await workloadStats(lab, fromHost, address);
  expect(after.pid, 'the same process').toBe(before.pid);
  const advanced = { timerfd: after.ticks - before.ticks, posix: after.posixTicks - before.posixTicks, itimer: after.itimerTicks - before.itimerTicks };
  console.log(`timers of ${address} over 600 ms: timerfd +${advanced.timerfd}, POSIX timer +${advanced.posix}, setitimer +${advanced.itimer}`);
  expect(advanced.timerfd, `timerfd ticks advanced (${JSON.stringify(advanced)})`).toBeGreaterThanOrEqual(15);
  expect(advanced.posix, `POSIX timer ticks advanced (${JSON.stringify(advanced)})`).toBeGreaterThanOrEqual(8);
  expect(advanced.itimer, `interval timer ticks advanced (${JSON.stringify(advanced)})`).toBeGreaterThanOrEqual(8);
  return after;
}

/** The API calls every lab test makes, bound to one lab cluster. */
/**
 * The lab's usual workload: ferry-workload with 16 MiB of memory answering on port 7000, a quarter
 * of a vCPU, on the shared pool, HA-protected at priority 5 — `over` changes any of it.
 */
export function labWorkload(id: string, address: string, over: Partial<WorkloadSpecInput> = {}): WorkloadSpecInput {
  return {
    id,
    template: 'busybox',
    command: ['/usr/bin/ferry-workload', '--mem', '16', '--port', '7000'],
    resources: { vcpus: 0.25, memoryMiB: 64, diskMiB: 64 },
    networks: [{ network: PROD.name, address }],
    pool: 'shared',
    ha: { enabled: true, priority: 5 },
    ...over,
  };
}

export function labApi(lab: () => LabCluster) {
  const api = (method: string, path: string, body?: unknown) => http(`${lab().cluster.apiUrl}${path}`, { token: lab().cluster.token, method, body });
  const get = (id: string) => lab().cluster.get<WorkloadView>(`/v1/workloads/${id}`);
  const migration = (id: string) => lab().cluster.get<MigrationRecord>(`/v1/migrations/${id}`);
  const history = async (host: string) => (await lab().cluster.get<{ history: HostHistoryEntry[] }>(`/v1/hosts/${host}/history`)).history;
  return {
    api,
    get,
    migration,
    history,
    /**
     * Nothing an HA workload would notice happened to `hosts` since `since`: no fencing, no host
     * suspect or down, no failover anywhere (what a control-plane fault must never cause).
     */
    expectUndisturbed: async (hosts: string[], since: number) => {
      for (const host of hosts) {
        const h = await history(host);
        expect(
          h.filter((e) => e.kind === 'fencing' && e.at >= since),
          `${host} fenced`,
        ).toEqual([]);
        expect(
          h.filter((e) => e.kind === 'state' && e.at >= since && /→ (suspect|down)/.test(e.message)),
          `${host} state`,
        ).toEqual([]);
      }
      const { failovers } = await lab().cluster.get<{ failovers: FailoverRecord[] }>('/v1/failovers');
      expect(failovers.filter((f) => f.detectedAt >= since)).toEqual([]);
    },
    /** Until the migration ended, however it ended. */
    finished: (id: string, timeoutMs = 60_000) =>
      eventually(
        `migration ${id} to end`,
        async () => {
          const m = await migration(id);
          return ['completed', 'rolled-back', 'failed'].includes(m.state) ? m : null;
        },
        timeoutMs,
        100,
      ),
    /** Creates a workload and waits until it runs and its ferry-workload answers (asked from `fromHost`). */
    running: async (spec: WorkloadSpecInput, fromHost = 'h2') => {
      const res = await api('POST', '/v1/workloads', spec);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      const w = await eventually(
        `${spec.id} running`,
        async () => {
          const v = await get(spec.id);
          if (v.phase === 'failed') throw new Error(v.error?.message);
          return v.phase === 'running' && v.observed?.state === 'running' ? v : null;
        },
        30_000,
      );
      const address = spec.networks![0]!.address;
      await eventually(`${address} to answer`, async () => /^\d+$/.test(await talk(lab().lab, fromHost, address, 'get')), 30_000);
      return w;
    },
  };
}
