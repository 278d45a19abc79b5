/**
 * Scale benchmark, first form (issue 16): the project's own local control plane (nats-server,
 * redis-server, scheduler, API as LocalCluster runs them) and the host simulator
 * (bench/sim/main.ts, one process) speaking the agent protocol for N hosts, each connected with
 * its own NATS identity. Prints, over a steady window: reports/s the scheduler accepted, its CPU
 * (from /proc/<pid>/stat) and RSS, Redis used_memory, hosts that went suspect or down while their
 * simulated agent kept reporting (false), and reports lost (sent by the simulator, never
 * acknowledged). With BENCH_SCALE_WORKLOADS > 0, that many workloads are then created through the
 * API and the placements per second measured (request → the scheduler recording it running once
 * the simulated host confirmed its start), and the steady window measured again with them.
 * Nothing is asserted: it only measures.
 *
 *   BENCH_SCALE_HOSTS      simulated hosts (default 200)
 *   BENCH_SCALE_SECONDS    the steady window (default 30)
 *   BENCH_SCALE_WORKLOADS  workloads created through the API after the first window (default 200)
 *   BENCH_SCALE_MIGRATIONS  of those, how many then migrate (live, wherever placement finds room; default 20):
 *                          every phase answered at once by the simulated hosts
 *   BENCH_SCALE_DIR        the cluster's state directory (default /var/tmp/ferry-bench-scale): its
 *                          secrets/ is kept between runs, so hosts' identities are minted once
 *
 * Second form (parts 3–5; bench/scale-steps.ts):
 *   BENCH_SCALE_STORAGE_GROUP  hosts per storage group sharing one pool (default 20; the simulator
 *                          deals hosts into groups by index, so neighbours are in different groups;
 *                          0: local pools only, as in the first form — no failover then)
 *   BENCH_SCALE_HA_ADMISSION   HA admission control on (default true)
 *   BENCH_SCALE_FAILOVER_WORKLOADS  HA workloads gathered on one host (affinity) that then dies (default 100; 0: none)
 *   BENCH_SCALE_RACK_HOSTS     hosts that then die at once, a rack (default 50, at most a quarter of the hosts; 0: none)
 *   BENCH_SCALE_RACK_WORKLOADS HA workloads on each of them (default 2)
 *   BENCH_SCALE_EVACUATE_HOSTS the hosts holding the most workloads put into maintenance at once
 *                          afterwards: evacuation plans executed, moves/s (default 4; 0: none)
 *   BENCH_SCALE_MIGRATION_LIMITS  when set, the scheduler's migration concurrency and per-source,
 *                          per-destination and per-pool limits (default: the scheduler's own)
 *   API latency (p50/p99 of one host, the first page of workloads, a migrate dry run) is measured
 *   while the workloads are created and over the last steady window.
 *
 * Needs root only as the other cluster benchmarks do (the supervisor); run under the lab lock.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { z } from 'zod';
import { LocalCluster, repoRoot } from '@ferry/deploy';
import { agentIdentity, HostStateEvent, subjects, WorkloadEvent, type MigrationRecord, type WorkloadSpecInput } from '@ferry/protocol';
import { createLogger, decodeText } from '@ferry/runtime';
import { ControlPlaneSecrets, natsNodePaths } from '@ferry/security';
import { simHostIds, storageGroupCount } from './sim/simulator.ts';
import { createHaGroups, snapshotCost, LatencyProbe, measureFailover, measurePlans, percentile, pool, workloadRecords, type FailoverResult, type LatencyRow, type PlanResult } from './scale-steps.ts';

const Settings = z.object({
  BENCH_SCALE_HOSTS: z.coerce.number().int().positive().max(20_000).default(200),
  BENCH_SCALE_SECONDS: z.coerce.number().int().positive().default(30),
  BENCH_SCALE_WORKLOADS: z.coerce.number().int().nonnegative().default(200),
  BENCH_SCALE_MIGRATIONS: z.coerce.number().int().nonnegative().default(20),
  BENCH_SCALE_DIR: z.string().startsWith('/').default('/var/tmp/ferry-bench-scale'),
  BENCH_SCALE_STORAGE_GROUP: z.coerce.number().int().min(0).max(4096).default(20),
  BENCH_SCALE_HA_ADMISSION: z.enum(['true', 'false']).default('true'),
  BENCH_SCALE_FAILOVER_WORKLOADS: z.coerce.number().int().min(0).max(1000).default(100),
  BENCH_SCALE_RACK_HOSTS: z.coerce.number().int().min(0).default(50),
  BENCH_SCALE_RACK_WORKLOADS: z.coerce.number().int().min(1).max(100).default(2),
  BENCH_SCALE_EVACUATE_HOSTS: z.coerce.number().int().min(0).max(100).default(4),
  BENCH_SCALE_MIGRATION_LIMITS: z.coerce.number().int().min(1).max(64).optional(),
});

const SimLine = z.looseObject({ type: z.enum(['connecting', 'ready', 'stats', 'killed', 'owners']), at: z.number(), rssBytes: z.number(), cpuSeconds: z.number() });
const SimKilled = z.object({ ref: z.number(), killedAt: z.number() });
const SimOwners = z.object({
  ref: z.number(),
  owners: z.record(z.string(), z.array(z.string())),
  doubleOwners: z.array(z.object({ workload: z.string(), hosts: z.array(z.string()) })),
});
const SimStats = z.object({
  reports: z.number(),
  acks: z.number(),
  unacked: z.number(),
  lateAcks: z.number(),
  connected: z.number(),
  running: z.number(),
  leaseExpired: z.number(),
  minLeaseRemainingMs: z.number().nullable(),
  disconnects: z.number(),
  errors: z.number(),
  commandErrors: z.number(),
  killed: z.number(),
  doubleOwners: z.number(),
});
type SimStats = z.infer<typeof SimStats> & z.infer<typeof SimLine>;

interface Window {
  label: string;
  seconds: number;
  /** per second: the simulator's counts over its own stats lines' times, the scheduler's over this window */
  sentPerSecond: number;
  acceptedPerSecond: number;
  ackedPerSecond: number;
  lost: number;
  schedulerCpuPercent: number;
  schedulerRssMiB: number;
  apiRssMiB: number;
  natsCpuPercent: number;
  simCpuPercent: number;
  simRssMiB: number;
  redisUsedMiB: number;
  minLeaseRemainingMs: number | null;
}

const CLK_TCK = 100;

/** utime + stime of a process, in seconds (/proc/<pid>/stat fields 14 and 15) */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb ?? 0) / 1024;
}

/** the pid of a process the cluster's supervisor started, by name (its run file) */
function pidOf(stateDir: string, name: string): number {
  const run = z.object({ processes: z.array(z.object({ name: z.string(), pid: z.number() })) }).parse(JSON.parse(readFileSync(join(stateDir, 'run.json'), 'utf8')));
  const found = run.processes.find((p) => p.name === name);
  if (!found) throw new Error(`no process ${name} in ${stateDir}/run.json`);
  return found.pid;
}

async function acceptedReports(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith('ferry_capacity_reports_total{') && line.includes('result="accepted"')) sum += Number(line.split(' ').pop());
  return sum;
}

export async function runScaleBenchmark(): Promise<void> {
  const settings = Settings.parse(process.env);
  const n = settings.BENCH_SCALE_HOSTS;
  const dir = settings.BENCH_SCALE_DIR;
  const hostIds = simHostIds(n);
  const log = createLogger('bench').child({}, { level: 'warn' });

  // everything of an earlier run but its secrets (the CA and the hosts' identities, minted once)
  if (existsSync(dir)) for (const entry of readdirSync(dir)) if (entry !== 'secrets' && entry !== 'run.json') rmSync(join(dir, entry), { recursive: true, force: true });
  const secretsDir = join(dir, 'secrets');
  const mintStarted = Date.now();
  const secrets = await ControlPlaneSecrets.create(secretsDir, ['127.0.0.1']);
  const missing = hostIds.filter((h) => !secrets.has(agentIdentity(h).name));
  let minted = 0;
  await pool(missing, Math.max(2, cpus().length * 2), async (h) => {
    await secrets.admit(agentIdentity(h));
    if (++minted % 500 === 0) console.error(`identities: ${minted}/${missing.length} minted`);
  });
  const mintSeconds = (Date.now() - mintStarted) / 1000;
  console.error(`identities: ${missing.length} minted, ${n - missing.length} reused from ${secretsDir} (${mintSeconds.toFixed(1)} s)`);

  const limits = settings.BENCH_SCALE_MIGRATION_LIMITS;
  const schedulerEnv: Record<string, string> = limits
    ? { FERRY_MIGRATION_CONCURRENCY: String(limits), FERRY_MIGRATIONS_PER_SOURCE: String(limits), FERRY_MIGRATIONS_PER_DESTINATION: String(limits), FERRY_MIGRATIONS_PER_POOL: String(limits) }
    : {};
  const cluster = new LocalCluster({ stateDir: dir, log, hostIds, persistentRedis: false, schedulerEnv, policyEnv: { FERRY_HA_ADMISSION: settings.BENCH_SCALE_HA_ADMISSION } });
  const latency: LatencyRow[] = [];
  const failovers: FailoverResult[] = [];
  let plans: PlanResult | null = null;
  const notes: string[] = [];
  let snapshot: { ms: number; hosts: number; workloads: number; mib: number } | null = null;
  const windows: Window[] = [];
  let placement: {
    count: number;
    seconds: number;
    perSecond: number;
    p50Ms: number;
    p99Ms: number;
    failed: number;
    acceptSeconds: number;
    schedulerCpuPercent: number;
    apiCpuPercent: number;
  } | null = null;
  let migrations: { count: number; seconds: number; ends: string } | null = null;
  const falseStates: string[] = [];
  /** what the run is doing: false states and the smallest lease left are counted by phase */
  let phase = 'connecting';
  const byPhase = new Map<string, { falseStates: number; minLeaseMs: number | null }>();
  const phaseOf = (name: string) => {
    let entry = byPhase.get(name);
    if (!entry) byPhase.set(name, (entry = { falseStates: 0, minLeaseMs: null }));
    return entry;
  };
  let leaseSampler: NodeJS.Timeout | undefined;
  let connectSeconds = 0;
  let upSeconds = 0;
  let simOut: { latest: SimStats | null; ready: Promise<SimStats> } | null = null;
  let sim: ReturnType<typeof execa> | null = null;
  let redisUsedMiB = 0;
  let slowConsumers = 0;
  let hostsDownAtEnd = 0;
  try {
    const clusterStarted = Date.now();
    await cluster.start();
    console.error(`control plane up in ${((Date.now() - clusterStarted) / 1000).toFixed(1)} s`);
    const schedulerPid = pidOf(dir, 'scheduler');
    const apiPid = pidOf(dir, 'api');
    const natsPid = pidOf(dir, 'nats');
    const metricsUrl = cluster.schedulerMetrics.get('scheduler')!;

    // what the scheduler decides about hosts and workloads, as an observer hears it
    const observer = await cluster.connectNats('observer');
    const up = new Set<string>();
    /** hosts the bench killed, and when the scheduler declared each down */
    const killed = new Set<string>();
    const downAt = new Map<string, number>();
    observer.subscribe(subjects.hostEvents, {
      callback: (err, msg) => {
        if (err) return;
        const event = HostStateEvent.safeParse(JSON.parse(decodeText(msg.data)));
        if (!event.success) return;
        const { hostId, to, from, silentForMs } = event.data;
        // a host's down after the bench killed it (one that went down earlier, e.g. while 5,000 connect, does not count)
        if (to === 'down' && killed.has(hostId) && !downAt.has(hostId)) downAt.set(hostId, Date.now());
        if (to === 'up') up.add(hostId);
        else if (phase !== 'connecting' && up.has(hostId) && !killed.has(hostId)) {
          falseStates.push(`${hostId}: ${from} → ${to} after ${silentForMs} ms silent (${phase})`);
          phaseOf(phase).falseStates++;
        }
      },
    });
    const accepted = new Map<string, number>();
    const runningAt = new Map<string, number>();
    /** workloads seen running, in order: what the latency probe's dry runs pick from */
    const runningList: string[] = [];
    let failedWorkloads = 0;
    observer.subscribe('ferry.events.workloads.*', {
      callback: (err, msg) => {
        if (err) return;
        const event = WorkloadEvent.safeParse(JSON.parse(decodeText(msg.data)));
        if (!event.success || event.data.type !== 'workload.phase') return;
        if (event.data.phase === 'running' && !runningAt.has(event.data.workloadId)) {
          runningAt.set(event.data.workloadId, Date.now());
          runningList.push(event.data.workloadId);
        }
        if (event.data.phase === 'failed') failedWorkloads++;
      },
    });

    // the simulator: its own process, as many hosts as asked
    const simStarted = Date.now();
    sim = execa(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench', 'sim', 'main.ts')], {
      cwd: repoRoot,
      env: {
        SIM_NATS_URL: cluster.natsUrl,
        SIM_CONTROL_DIR: secretsDir,
        SIM_HOSTS: String(n),
        SIM_REPORT_MS: '1000',
        SIM_CONNECT_CONCURRENCY: '32',
        SIM_STORAGE_GROUP: String(settings.BENCH_SCALE_STORAGE_GROUP),
      },
      stdin: 'pipe',
      stderr: 'inherit',
      buffer: false,
      reject: false,
    });
    const simPid = sim.pid!;
    /** commands to the simulator (one JSON line on its stdin), answered by the line with the same ref */
    const simReplies = new Map<number, (line: unknown) => void>();
    let simRef = 0;
    const simCommand = (command: object): Promise<unknown> =>
      new Promise((resolve) => {
        const ref = ++simRef;
        simReplies.set(ref, resolve);
        sim!.stdin!.write(`${JSON.stringify({ ...command, ref })}\n`);
      });
    const simKill = async (hosts: string[]) => {
      for (const h of hosts) killed.add(h);
      return SimKilled.parse(await simCommand({ cmd: 'kill', hosts })).killedAt;
    };
    const simOwners = async (ids: string[]) => SimOwners.parse(await simCommand({ cmd: 'owners', ids }));
    simOut = (() => {
      const state: { latest: SimStats | null; ready: Promise<SimStats> } = { latest: null, ready: Promise.resolve(null as unknown as SimStats) };
      state.ready = new Promise<SimStats>((resolve, reject) => {
        const lines = createInterface({ input: sim!.stdout! });
        lines.on('line', (text) => {
          const parsed = SimLine.safeParse(JSON.parse(text));
          if (!parsed.success) return;
          if (parsed.data.type === 'connecting') console.error(`simulator: ${String(parsed.data.connected)}/${n} hosts connected`);
          if (parsed.data.type === 'ready') resolve(parsed.data as unknown as SimStats);
          if (parsed.data.type === 'stats') state.latest = { ...(parsed.data as object), ...SimStats.parse(parsed.data) } as SimStats;
          if (parsed.data.type === 'killed' || parsed.data.type === 'owners') {
            const { ref } = z.object({ ref: z.number() }).parse(parsed.data);
            simReplies.get(ref)?.(parsed.data);
            simReplies.delete(ref);
          }
        });
        lines.on('close', () => reject(new Error('the simulator exited')));
      });
      return state;
    })();
    const ready = await simOut.ready;
    connectSeconds = (Date.now() - simStarted) / 1000;
    console.error(`simulator: ${n} hosts connected in ${connectSeconds.toFixed(1)} s (simulator RSS ${(ready.rssBytes / 2 ** 20).toFixed(0)} MiB)`);
    for (const deadline = Date.now() + 120_000; up.size < n;) {
      if (Date.now() > deadline) throw new Error(`only ${up.size}/${n} hosts up after 120 s`);
      await sleep(200);
    }
    upSeconds = (Date.now() - simStarted) / 1000;
    phase = 'settling';
    leaseSampler = setInterval(() => {
      const lease = simOut?.latest?.minLeaseRemainingMs ?? null;
      const entry = phaseOf(phase);
      if (lease !== null) entry.minLeaseMs = entry.minLeaseMs === null ? lease : Math.min(entry.minLeaseMs, lease);
    }, 500);
    await sleep(5000); // settle: the first flushes, every host's lease acknowledged

    const live = () => hostIds.filter((h) => !killed.has(h));
    const newProbe = () =>
      new LatencyProbe(
        { url: cluster.apiUrl, token: cluster.token },
        () => {
          const l = live();
          return l[Math.floor(Math.random() * l.length)]!;
        },
        () => (runningList.length ? runningList[Math.floor(Math.random() * runningList.length)]! : null),
      );

    const measure = async (label: string): Promise<Window> => {
      const at0 = { t: Date.now(), sched: cpuSeconds(schedulerPid), nats: cpuSeconds(natsPid), sim: cpuSeconds(simPid), accepted: await acceptedReports(metricsUrl), stats: simOut!.latest! };
      let schedulerRss = 0;
      let apiRss = 0;
      let simRss = 0;
      let minLease: number | null = null;
      for (let i = 0; i < settings.BENCH_SCALE_SECONDS; i++) {
        await sleep(1000);
        schedulerRss = Math.max(schedulerRss, rssMiB(schedulerPid));
        apiRss = Math.max(apiRss, rssMiB(apiPid));
        simRss = Math.max(simRss, rssMiB(simPid));
        const lease = simOut!.latest?.minLeaseRemainingMs ?? null;
        if (lease !== null) minLease = minLease === null ? lease : Math.min(minLease, lease);
      }
      const at1 = { t: Date.now(), sched: cpuSeconds(schedulerPid), nats: cpuSeconds(natsPid), sim: cpuSeconds(simPid), accepted: await acceptedReports(metricsUrl), stats: simOut!.latest! };
      const seconds = (at1.t - at0.t) / 1000;
      const simSeconds = (at1.stats.at - at0.stats.at) / 1000;
      const redis = cluster.redisAdmin({ maxRetriesPerRequest: 2 });
      const info = await redis.info('memory');
      redis.disconnect();
      redisUsedMiB = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0) / 2 ** 20;
      return {
        label,
        seconds,
        sentPerSecond: (at1.stats.reports - at0.stats.reports) / simSeconds,
        acceptedPerSecond: (at1.accepted - at0.accepted) / seconds,
        ackedPerSecond: (at1.stats.acks - at0.stats.acks) / simSeconds,
        lost: at1.stats.unacked - at0.stats.unacked,
        schedulerCpuPercent: ((at1.sched - at0.sched) / seconds) * 100,
        schedulerRssMiB: schedulerRss,
        apiRssMiB: apiRss,
        natsCpuPercent: ((at1.nats - at0.nats) / seconds) * 100,
        simCpuPercent: ((at1.sim - at0.sim) / seconds) * 100,
        simRssMiB: simRss,
        redisUsedMiB,
        minLeaseRemainingMs: minLease,
      };
    };

    phase = 'hosts only';
    windows.push(await measure(phase));
    console.error(`window: ${JSON.stringify(windows.at(-1))}`);

    const k = settings.BENCH_SCALE_WORKLOADS;
    if (k > 0) {
      const ids = Array.from({ length: k }, (_, i) => `sw-${String(i + 1).padStart(6, '0')}`);
      phase = `creating ${k} workloads`;
      const placeStarted = Date.now();
      const cpuAtStart = { sched: cpuSeconds(schedulerPid), api: cpuSeconds(apiPid) };
      const probe = newProbe();
      await pool(ids, 32, async (id) => {
        const spec: WorkloadSpecInput = { id, template: 'busybox', command: ['/bin/sleep', 'infinity'], resources: { vcpus: 0.05, memoryMiB: 16, diskMiB: 16 }, pool: 'local' };
        // from the request's sending: the scheduler may record it running before the API's answer arrives
        accepted.set(id, Date.now());
        await cluster.request('POST', '/v1/workloads', spec);
      });
      const acceptSeconds = (Date.now() - placeStarted) / 1000;
      console.error(`workloads: ${k} accepted by the API in ${acceptSeconds.toFixed(1)} s`);
      for (const deadline = Date.now() + 300_000; runningAt.size + failedWorkloads < k;) {
        if (Date.now() > deadline) break;
        await sleep(200);
      }
      latency.push(...(await probe.stop(`while ${k} workloads are created (32 requests at a time)`)));
      const latencies = ids.filter((id) => runningAt.has(id)).map((id) => runningAt.get(id)! - accepted.get(id)!);
      const last = Math.max(...ids.map((id) => runningAt.get(id) ?? 0));
      const seconds = (last - placeStarted) / 1000;
      const busy = (Date.now() - placeStarted) / 1000;
      placement = {
        count: runningAt.size,
        seconds,
        perSecond: runningAt.size / seconds,
        p50Ms: percentile(latencies, 50),
        p99Ms: percentile(latencies, 99),
        failed: failedWorkloads,
        acceptSeconds,
        schedulerCpuPercent: ((cpuSeconds(schedulerPid) - cpuAtStart.sched) / busy) * 100,
        apiCpuPercent: ((cpuSeconds(apiPid) - cpuAtStart.api) / busy) * 100,
      };
      console.error(`placements: ${JSON.stringify(placement)}`);
      const m = Math.min(settings.BENCH_SCALE_MIGRATIONS, runningAt.size);
      if (m > 0) {
        phase = `migrating ${m}`;
        const moveStarted = Date.now();
        const ends = new Map<string, number>();
        await pool(ids.filter((id) => runningAt.has(id)).slice(0, m), 8, async (id) => {
          const asked = await cluster.request<{ migration: MigrationRecord }>('POST', `/v1/workloads/${id}/migrate`, { mode: 'live' }).catch((err: unknown) => err as Error);
          if (asked instanceof Error) {
            const key = `refused: ${asked.message.slice(0, 200)}`;
            ends.set(key, (ends.get(key) ?? 0) + 1);
            return;
          }
          const { migration } = asked;
          for (const deadline = Date.now() + 120_000; Date.now() < deadline; await sleep(100)) {
            const record = await cluster.request<MigrationRecord>('GET', `/v1/migrations/${migration.id}`);
            if (['completed', 'rolled-back', 'failed'].includes(record.state)) {
              ends.set(record.state, (ends.get(record.state) ?? 0) + 1);
              return;
            }
          }
          ends.set('timed out', (ends.get('timed out') ?? 0) + 1);
        });
        const seconds = (Date.now() - moveStarted) / 1000;
        migrations = { count: m, seconds, ends: [...ends].map(([state, count]) => `${count} ${state}`).join(', ') };
        console.error(`migrations: ${JSON.stringify(migrations)}`);
      }
    }

    const redisFo = cluster.redisAdmin({ maxRetriesPerRequest: 2 });
    const apiAt = { url: cluster.apiUrl, token: cluster.token };
    const groups = storageGroupCount(n, settings.BENCH_SCALE_STORAGE_GROUP);
    const fw = settings.BENCH_SCALE_FAILOVER_WORKLOADS;
    if (fw > 0 && groups > 0) {
      // one host holding fw HA workloads dies (they share one affinity group: placement gathers them)
      phase = `failover: creating ${fw} HA workloads on one host`;
      const made = Date.now();
      const [group] = await createHaGroups(apiAt, redisFo, cluster.keyPrefix, [{ name: 'fo-one', pool: 'san-000' }], fw);
      const records = await workloadRecords(redisFo, cluster.keyPrefix, group!.ids);
      const onHost = group!.ids.filter((_, i) => records[i]?.hostId === group!.host);
      console.error(`failover: ${onHost.length}/${fw} HA workloads on ${group!.host} (made in ${((Date.now() - made) / 1000).toFixed(1)} s)`);
      await sleep(3000); // a few reports: every peer's view of the host's storage heartbeat is fresh
      phase = `failover: ${group!.host} dies`;
      const result = await measureFailover({
        label: `1 host (${group!.host}) with ${onHost.length} HA workloads`,
        redis: redisFo,
        keyPrefix: cluster.keyPrefix,
        hosts: [group!.host],
        ids: onHost,
        kill: simKill,
        owners: simOwners,
        downAt,
        timeoutMs: 120_000,
      });
      failovers.push(result);
      console.error(`failover: ${JSON.stringify(result)}`);
    }
    const rackHosts = Math.min(settings.BENCH_SCALE_RACK_HOSTS, Math.floor(n / 4));
    if (rackHosts > 0 && groups > 0) {
      const rw = settings.BENCH_SCALE_RACK_WORKLOADS;
      phase = `rack: creating ${rackHosts} × ${rw} HA workloads`;
      const made = Date.now();
      const rack = await createHaGroups(
        apiAt,
        redisFo,
        cluster.keyPrefix,
        Array.from({ length: rackHosts }, (_, r) => ({ name: `rack-${String(r).padStart(2, '0')}`, pool: `san-${String(r % groups).padStart(3, '0')}` })),
        rw,
        'rack-apart',
      );
      const hosts = [...new Set(rack.map((g) => g.host))];
      const records = await workloadRecords(
        redisFo,
        cluster.keyPrefix,
        rack.flatMap((g) => g.ids),
      );
      const ids = records.filter((r) => r && r.hostId && hosts.includes(r.hostId)).map((r) => r!.spec.id);
      console.error(`rack: ${ids.length} HA workloads on ${hosts.length} hosts (made in ${((Date.now() - made) / 1000).toFixed(1)} s)`);
      if (hosts.length < rackHosts) notes.push(`rack: the ${rackHosts} affinity groups landed on ${hosts.length} distinct hosts`);
      await sleep(3000);
      phase = `rack: ${hosts.length} hosts die`;
      const result = await measureFailover({
        label: `${hosts.length} hosts at once (a rack) with ${ids.length} HA workloads`,
        redis: redisFo,
        keyPrefix: cluster.keyPrefix,
        hosts,
        ids,
        kill: simKill,
        owners: simOwners,
        downAt,
        timeoutMs: 180_000,
      });
      failovers.push(result);
      console.error(`rack: ${JSON.stringify(result)}`);
    }
    const evacuate = settings.BENCH_SCALE_EVACUATE_HOSTS;
    if (evacuate > 0) {
      // the live hosts holding the most workloads (the failovers' affinity groups gathered theirs)
      const count = new Map<string, number>();
      for (const raw of await redisFo.hvals(`${cluster.keyPrefix}:workloads`)) {
        const w = JSON.parse(raw) as { hostId: string | null; phase: string };
        if (w.hostId && w.phase === 'running' && !killed.has(w.hostId)) count.set(w.hostId, (count.get(w.hostId) ?? 0) + 1);
      }
      const hosts = [...count]
        .sort((a, b) => b[1] - a[1])
        .slice(0, evacuate)
        .map(([h]) => h);
      phase = `plans: evacuating ${hosts.length} hosts`;
      plans = await measurePlans(apiAt, hosts, 600_000);
      console.error(`plans: ${JSON.stringify(plans)} (hosts ${hosts.map((h) => `${h}: ${count.get(h)}`).join(', ')})`);
    }
    snapshot = await snapshotCost(redisFo, cluster.keyPrefix, log);
    console.error(`snapshot: ${JSON.stringify(snapshot)}`);
    redisFo.disconnect();

    await sleep(5000);
    phase = `steady: ${n - killed.size} hosts + ${k} workloads`;
    const probe = newProbe();
    windows.push(await measure(phase));
    latency.push(...(await probe.stop(`steady: hosts reporting, ${k} + HA workloads placed`)));

    // what the store says at the end: every host should be up
    const redis = cluster.redisAdmin({ maxRetriesPerRequest: 2 });
    const records = await redis.hvals(`${cluster.keyPrefix}:hosts`);
    redis.disconnect();
    hostsDownAtEnd = records.map((r) => JSON.parse(r) as { id: string; state: string }).filter((h) => h.state !== 'up' && !killed.has(h.id)).length;
    const natsLog = natsNodePaths(secretsDir).log;
    // the log is kept with the secrets between runs: only this run's nats-server's lines count
    slowConsumers = existsSync(natsLog)
      ? readFileSync(natsLog, 'utf8')
          .split('\n')
          .filter((line) => line.startsWith(`[${natsPid}] `) && line.includes('Slow Consumer')).length
      : 0;
    await observer.close();
  } finally {
    clearInterval(leaseSampler);
    sim?.stdin?.end();
    if (sim) await Promise.race([sim, sleep(10_000)]);
    sim?.kill('SIGKILL');
    await cluster.stop();
  }

  const final = simOut?.latest;
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; report interval 1 s; lease 5 s, suspect 3 s, down 7 s (scheduler defaults)`);
  console.log(
    `hosts: ${n} (each its own NATS connection and identity; ${mintSeconds.toFixed(1)} s to mint or reuse identities), connected in ${connectSeconds.toFixed(1)} s, all up after ${upSeconds.toFixed(1)} s\n`,
  );
  console.log('| window | hosts | s | reports sent/s | accepted/s | acked/s | lost | scheduler CPU | scheduler RSS | API RSS | Redis used | nats-server CPU | simulator CPU / RSS | min lease left |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const w of windows) {
    console.log(
      `| ${w.label} | ${n} | ${w.seconds.toFixed(0)} | ${w.sentPerSecond.toFixed(0)} | ${w.acceptedPerSecond.toFixed(0)} | ${w.ackedPerSecond.toFixed(0)} | ` +
        `${w.lost} | ${w.schedulerCpuPercent.toFixed(0)} % | ${w.schedulerRssMiB.toFixed(0)} MiB | ${w.apiRssMiB.toFixed(0)} MiB | ${w.redisUsedMiB.toFixed(1)} MiB | ` +
        `${w.natsCpuPercent.toFixed(0)} % | ${w.simCpuPercent.toFixed(0)} % / ${w.simRssMiB.toFixed(0)} MiB | ${w.minLeaseRemainingMs === null ? '-' : `${(w.minLeaseRemainingMs / 1000).toFixed(1)} s`} |`,
    );
  }
  console.log(
    `\nfalse suspect/down while reporting: ${falseStates.length}${falseStates.length ? ` (${falseStates.slice(0, 5).join('; ')}${falseStates.length > 5 ? '; …' : ''})` : ''}; ` +
      `hosts not up in the store at the end: ${hostsDownAtEnd}; NATS slow-consumer warnings: ${slowConsumers}; ` +
      `simulator: ${final?.disconnects ?? '?'} disconnects, ${final?.errors ?? '?'} errors, ${final?.leaseExpired ?? '?'} leases expired, ${final?.commandErrors ?? '?'} command errors`,
  );
  console.log(
    `by phase: ${[...byPhase]
      .map(([name, p]) => `${name}: ${p.falseStates} false suspect/down, smallest lease left ${p.minLeaseMs === null ? '-' : `${(p.minLeaseMs / 1000).toFixed(1)} s`}`)
      .join('; ')}`,
  );
  if (placement) {
    console.log(
      `placements: ${placement.count} running (${placement.failed} failed) in ${placement.seconds.toFixed(1)} s = ${placement.perSecond.toFixed(1)}/s; request → running p50 ${placement.p50Ms.toFixed(0)} ms, p99 ${placement.p99Ms.toFixed(0)} ms; ` +
        `the API accepted them in ${placement.acceptSeconds.toFixed(1)} s (32 at a time); scheduler CPU ${placement.schedulerCpuPercent.toFixed(0)} %, API CPU ${placement.apiCpuPercent.toFixed(0)} % meanwhile; ` +
        `the simulator holds ${final?.running ?? '?'} running containers`,
    );
  }
  if (migrations) {
    console.log(
      `migrations: ${migrations.count} live moves (8 at a time, each followed until it ended) in ${migrations.seconds.toFixed(1)} s = ${(migrations.count / migrations.seconds).toFixed(1)}/s: ${migrations.ends}`,
    );
  }
  if (latency.length > 0) {
    console.log('\n| API latency | while | requests | errors | p50 | p99 | max | p99 ≤ 100 ms |');
    console.log('|---|---|---:|---:|---:|---:|---:|---|');
    for (const r of latency) {
      console.log(
        `| ${r.kind} | ${r.phase} | ${r.n} | ${r.errors} | ${r.p50Ms.toFixed(1)} ms | ${r.p99Ms.toFixed(1)} ms | ${r.maxMs.toFixed(0)} ms | ${r.n === 0 ? '-' : r.p99Ms <= 100 ? 'met' : 'not met'} |`,
      );
    }
    console.log('(4 clients, each: one request, then 100 ms pause, the three kinds in turn; a dry run answered 409 counts as an answer)');
  }
  if (failovers.length > 0) {
    console.log('\n| failover | HA workloads | killed → down | → first running elsewhere | → median | → all running elsewhere | double owners | record ≠ simulator | target |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---|');
    const secs = (v: number | null) => (v === null ? '-' : `${v.toFixed(1)} s`);
    for (const f of failovers) {
      const target = f.hostsKilled === 1 ? 10 : 30;
      const met = f.allRunningS !== null && f.allRunningS <= target && f.doubleOwners === 0;
      console.log(
        `| ${f.label} | ${f.workloads} | ${secs(f.detectedDownS)} | ${secs(f.firstRunningS)} | ${secs(f.medianRunningS)} | ${f.error ?? secs(f.allRunningS)} | ${f.doubleOwners} | ${f.recordMismatches} | ≤ ${target} s, 0 double owners: ${met ? 'met' : 'not met'} |`,
      );
    }
  }
  if (plans) {
    console.log('\n| plans | moves | completed | other | first request → last move ended | moves/s | move p50 / p99 | target |');
    console.log('|---|---:|---:|---|---:|---:|---:|---|');
    console.log(
      `| ${plans.plans} evacuation plans (maintenance) | ${plans.moves} | ${plans.completed} | ${plans.other || '-'} | ${plans.seconds.toFixed(1)} s | ${plans.movesPerSecond.toFixed(1)} | ${plans.moveP50S.toFixed(1)} s / ${plans.moveP99S.toFixed(1)} s | ≥ 500/s: ${plans.movesPerSecond >= 500 ? 'met' : 'not met'} |`,
    );
    console.log(
      `(maintenance requests one after another; ${plans.refused} refused as stale — 409, the cluster's revision changed — and asked again. A move's time, medians in ms: ${plans.breakdown})`,
    );
  }
  if (snapshot) {
    console.log(
      `\none whole-cluster snapshot (ClusterStore.snapshot(), what POST /v1/workloads, each placement and each failover restart load), timed from the bench process at the end: ` +
        `${snapshot.ms.toFixed(0)} ms for ${snapshot.hosts} host and ${snapshot.workloads} workload records (${snapshot.mib.toFixed(1)} MiB in Redis)`,
    );
  }
  console.log(
    `\nsettings: storage groups of ${settings.BENCH_SCALE_STORAGE_GROUP} hosts (${storageGroupCount(n, settings.BENCH_SCALE_STORAGE_GROUP)} shared pools), HA admission ${settings.BENCH_SCALE_HA_ADMISSION === 'true' ? 'on' : 'off'}, ` +
      `migration limits ${limits ? `${limits} (concurrency, per source, per destination, per pool)` : 'the scheduler defaults (4 at once; 2 per source, 2 per destination, 4 per pool)'}; ` +
      `simulator at the end: ${final?.killed ?? '?'} hosts killed, ${final?.doubleOwners ?? '?'} workloads running on two live hosts${notes.length ? `; ${notes.join('; ')}` : ''}`,
  );
  console.log(`\n(lost: reports of the window no scheduler acknowledged within 5 report intervals; late acknowledgements over the run: ${final?.lateAcks ?? '?'})`);
}
