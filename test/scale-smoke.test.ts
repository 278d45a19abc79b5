import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostStateEvent, subjects, type FailoverRecord, type HostView, type WorkloadSpecInput, type WorkloadView } from '@ferry/protocol';
import { decodeText } from '@ferry/runtime';
import { Simulator, simHostIds, storageGroupCount } from '../bench/sim/simulator.ts';
import { eventually, http, startTestCluster, type TestCluster } from './helpers/cluster.ts';

/**
 * Issue 16, the CI form of `npm run bench scale`: 200 simulated hosts (bench/sim, in this process:
 * each its own NATS connection and agent identity, reporting every second, storage groups of 20
 * sharing a pool with probes and storage heartbeats) against a real scheduler and API. All hosts
 * come up; workloads are created and run; a host holding HA workloads dies and they run elsewhere,
 * never on two hosts; the list routes page through everything. Correctness only: no timing is
 * asserted (every wait is an `eventually` with a generous bound).
 */
const HOSTS = 200;
const GROUP = 20;
const PLAIN = 40;
const HA = 10;

describe('scale smoke: 200 simulated hosts', () => {
  let t: TestCluster;
  let sim: Simulator;
  const hostIds = simHostIds(HOSTS, 'smoke');
  /** host state changes the scheduler announced, in order */
  const hostEvents: HostStateEvent[] = [];
  const request = (method: string, path: string, body?: unknown) => http(`${t.cluster.apiUrl}${path}`, { token: t.cluster.token, method, body });
  const get = async (path: string) => {
    const answer = await request('GET', path);
    expect(answer.status, `GET ${path}: ${JSON.stringify(answer.body)}`).toBe(200);
    return answer.body;
  };
  /** every page of a list route, following nextCursor */
  async function walk<T>(path: string, key: string): Promise<T[][]> {
    const pages: T[][] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const body = await get(`${path}${cursor ? `${sep}cursor=${encodeURIComponent(cursor)}` : ''}`);
      pages.push(body[key] as T[]);
      cursor = body.nextCursor as string | null;
    } while (cursor);
    return pages;
  }
  const workload = (id: string, extra: Partial<WorkloadSpecInput> = {}): WorkloadSpecInput => ({
    id,
    template: 'busybox',
    command: ['/bin/sleep', 'infinity'],
    resources: { vcpus: 0.05, memoryMiB: 16, diskMiB: 16 },
    pool: 'local',
    ...extra,
  });
  const create = async (spec: WorkloadSpecInput) => {
    const answer = await request('POST', '/v1/workloads', spec);
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  };
  const views = async (ids: string[]): Promise<WorkloadView[]> => Promise.all(ids.map(async (id) => (await get(`/v1/workloads/${id}`)) as WorkloadView));
  const allRunning = async (ids: string[], notOn?: string) => {
    const vs = await views(ids);
    return vs.every((w) => w.phase === 'running' && w.hostId !== null && w.hostId !== notOn) ? vs : null;
  };

  const plainIds = Array.from({ length: PLAIN }, (_, i) => `plain-${String(i).padStart(2, '0')}`);
  const haIds = Array.from({ length: HA }, (_, i) => `ha-${String(i).padStart(2, '0')}`);
  let victim = '';
  let newHost = '';

  beforeAll(async () => {
    t = await startTestCluster({ hostIds, policyEnv: { FERRY_HA_ADMISSION: 'true' } });
    t.nc.subscribe(subjects.hostEvents, {
      callback: (err, msg) => {
        if (err) return;
        const event = HostStateEvent.safeParse(JSON.parse(decodeText(msg.data)));
        if (event.success) hostEvents.push(event.data);
      },
    });
    sim = new Simulator({ natsUrl: t.cluster.natsUrl, controlDir: t.cluster.secrets.dir, hostIds, reportIntervalMs: 1000, connectConcurrency: 16, storageGroupSize: GROUP });
    await sim.start();
  }, 180_000);

  afterAll(async () => {
    await sim?.stop();
    await t?.close();
  });

  it('brings every simulated host up, each reporting and holding its lease', async () => {
    await eventually(
      'every host up',
      async () => {
        const hosts = (await walk<HostView>('/v1/hosts?state=up&limit=1000', 'hosts')).flat();
        return hosts.length === HOSTS;
      },
      60_000,
      250,
    );
    // every host's lease acknowledged at least once
    await eventually('every lease acknowledged', async () => sim.totals().minLeaseRemainingMs !== null && sim.totals().leaseExpired === 0 && sim.totals().acks >= HOSTS, 15_000);
    const host = (await get(`/v1/hosts/${hostIds[7]!}`)) as HostView;
    expect(host.state).toBe('up');
    // the shared pool of its storage group, proven by probes
    const shared = host.capacity.pools.find((p) => p.shared);
    expect(shared?.id).toBe(`san-${String(7 % storageGroupCount(HOSTS, GROUP)).padStart(3, '0')}`);
    expect(shared?.probe?.sees).toHaveLength(GROUP - 1);
  }, 90_000);

  it('creates workloads and runs them on the simulated hosts', async () => {
    for (const id of plainIds) await create(workload(id));
    // the HA ones share an affinity group: placement gathers them on the host the first one got
    await create(workload(haIds[0]!, { pool: 'san-000', ha: { enabled: true, priority: 0 }, placement: { affinity: ['smoke-ha'] } }));
    const [first] = await eventually('the first HA workload running', () => allRunning([haIds[0]!]), 30_000);
    victim = first!.hostId!;
    for (const id of haIds.slice(1)) await create(workload(id, { pool: 'san-000', ha: { enabled: true, priority: 0 }, placement: { affinity: ['smoke-ha'] } }));
    const running = await eventually('every workload running', () => allRunning([...plainIds, ...haIds]), 60_000, 250);
    expect(running.filter((w) => haIds.includes(w.spec.id)).map((w) => w.hostId)).toEqual(haIds.map(() => victim));
    // the simulated agents run exactly what the records say, each once
    const owners = sim.owners([...plainIds, ...haIds]);
    for (const w of running) expect(owners.get(w.spec.id), w.spec.id).toEqual([w.hostId]);
    expect(sim.doubleOwners()).toEqual([]);
  }, 120_000);

  it('restarts the HA workloads of a dead host elsewhere, never on two hosts', async () => {
    expect(victim).not.toBe('');
    // every peer of its storage group has seen its heartbeat lately (a real death, not a fresh host)
    const doubles = new Set<string>();
    await sim.kill([victim]);
    const moved = await eventually(
      'the HA workloads running elsewhere',
      async () => {
        for (const d of sim.doubleOwners()) doubles.add(d.workload);
        return allRunning(haIds, victim);
      },
      60_000,
      250,
    );
    newHost = moved[0]!.hostId!;
    const owners = sim.owners(haIds);
    for (const w of moved) {
      expect(w.epoch, w.spec.id).toBeGreaterThan(1);
      expect(owners.get(w.spec.id), w.spec.id).toEqual([w.hostId]);
    }
    for (const d of sim.doubleOwners()) doubles.add(d.workload);
    expect([...doubles]).toEqual([]);
    // the failover record: completed, every restart done, on hosts of the same storage group
    const failover = await eventually(
      'the failover completed',
      async () => {
        const [f] = (await get(`/v1/failovers?host=${victim}`)).failovers as FailoverRecord[];
        return f?.state === 'completed' ? f : null;
      },
      30_000,
    );
    expect(failover.restarts.map((r) => r.status)).toEqual(haIds.map(() => 'restarted'));
    expect(failover.restarts.map((r) => r.workload).sort()).toEqual(haIds);
    for (const r of failover.restarts) expect(sim.sharedPoolOf(r.to!)).toBe('san-000');
    // the plain workloads of the dead host (if any) are not restarted: they are listed as unprotected
    const plainOnVictim = (await views(plainIds)).filter((w) => w.hostId === victim).map((w) => w.spec.id);
    expect([...failover.unprotected].sort()).toEqual(plainOnVictim.sort());
    // nobody but the dead host was declared down (no false failover)
    const downs = hostEvents.filter((e) => e.to === 'down').map((e) => e.hostId);
    expect([...new Set(downs)]).toEqual([victim]);
  }, 120_000);

  it('pages through every host and workload', async () => {
    const hostPages = await walk<HostView>('/v1/hosts?limit=50', 'hosts');
    expect(hostPages.length).toBe(HOSTS / 50);
    expect(hostPages.every((p) => p.length === 50)).toBe(true);
    const listed = hostPages.flat().map((h) => h.id);
    expect(new Set(listed).size).toBe(HOSTS);
    expect([...listed].sort()).toEqual([...hostIds].sort());
    expect((await walk<HostView>('/v1/hosts?state=down&limit=10', 'hosts')).flat().map((h) => h.id)).toEqual([victim]);

    const workloadPages = await walk<WorkloadView>('/v1/workloads?limit=7', 'workloads');
    expect(workloadPages.length).toBe(Math.ceil((PLAIN + HA) / 7));
    const ids = workloadPages.flat().map((w) => w.spec.id);
    expect(new Set(ids).size).toBe(PLAIN + HA);
    expect([...ids].sort()).toEqual([...plainIds, ...haIds].sort());
    // a server-side filter, paged: the host the HA workloads moved to
    const onNewHost = (await walk<WorkloadView>(`/v1/workloads?host=${newHost}&limit=3`, 'workloads')).flat().map((w) => w.spec.id);
    expect(onNewHost).toEqual(expect.arrayContaining(haIds));
  }, 60_000);
});
