/**
 * The second form's measurements for `npm run bench scale` (issue 16, parts 3–5), each against a
 * running control plane with the host simulator behind it: API latency under load, failover of
 * simulated hosts, and moves executed through plans. Only measures; nothing is asserted.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { ClusterStore } from '@ferry/store';
import type { Logger } from '@ferry/runtime';
import { redisKeys, type MigrationRecord, type PlanRecord, type WorkloadRecord, type WorkloadSpecInput } from '@ferry/protocol';

export const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]! : NaN;
};

/** Runs jobs with at most `limit` at once. */
export async function pool<T>(items: T[], limit: number, job: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: limit }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await job(item);
    }),
  );
}

export interface Api {
  url: string;
  token: string;
}

/** One API request; throws with the answer on anything but 2xx. */
export async function api<T>(a: Api, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${a.token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${a.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : null) as T;
}

export const LATENCY_KINDS = ['GET /v1/hosts/:id', 'GET /v1/workloads (first page)', 'POST /v1/workloads/:id/migrate?dryRun=true'] as const;
export type LatencyKind = (typeof LATENCY_KINDS)[number];

export interface LatencyRow {
  phase: string;
  kind: LatencyKind;
  n: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * A few API clients, each asking in turn for one host, the first page of the workloads and a
 * migrate dry run of a running workload, with a pause between requests (a person's dashboard and
 * a few scripts, not a load generator: `clients` × ~1 / (pause + latency) requests per second).
 * Latency is the whole HTTP exchange, body read.
 */
export class LatencyProbe {
  private stopped = false;
  private readonly samples = new Map<LatencyKind, { ms: number[]; errors: number }>(LATENCY_KINDS.map((k) => [k, { ms: [], errors: 0 }]));
  private readonly done: Promise<void>;

  constructor(
    private readonly a: Api,
    private readonly pickHost: () => string,
    /** a workload with a host (the dry run needs one), or null while there is none */
    private readonly pickWorkload: () => string | null,
    clients = 4,
    private readonly pauseMs = 100,
  ) {
    this.done = Promise.all(Array.from({ length: clients }, (_, i) => this.client(i))).then(() => undefined);
  }

  private async client(first: number): Promise<void> {
    for (let i = first; !this.stopped; i++) {
      const kind = LATENCY_KINDS[i % LATENCY_KINDS.length]!;
      let path: string;
      let method = 'GET';
      let body: string | undefined;
      if (kind === 'GET /v1/hosts/:id') path = `/v1/hosts/${this.pickHost()}`;
      else if (kind === 'GET /v1/workloads (first page)') path = '/v1/workloads';
      else {
        const id = this.pickWorkload();
        if (!id) continue;
        path = `/v1/workloads/${id}/migrate?dryRun=true`;
        method = 'POST';
        body = '{}';
      }
      const started = performance.now();
      const entry = this.samples.get(kind)!;
      try {
        const response = await fetch(`${this.a.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${this.a.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          body,
        });
        await response.arrayBuffer();
        // a dry run refused (409: no host can take it now) is an answer too; 5xx and 404 are not
        if (response.status >= 500 || response.status === 404) entry.errors++;
        else entry.ms.push(performance.now() - started);
      } catch {
        entry.errors++;
      }
      await sleep(this.pauseMs);
    }
  }

  async stop(phase: string): Promise<LatencyRow[]> {
    this.stopped = true;
    await this.done;
    return LATENCY_KINDS.map((kind) => {
      const { ms, errors } = this.samples.get(kind)!;
      return { phase, kind, n: ms.length, errors, p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), maxMs: ms.length ? Math.max(...ms) : NaN };
    });
  }
}

/** An HA workload whose root filesystem is on the shared pool `pool`, in the affinity group `group` (and the anti-affinity group `apart`). */
export const haSpec = (id: string, pool: string, group: string, apart?: string): WorkloadSpecInput => ({
  id,
  template: 'busybox',
  command: ['/bin/sleep', 'infinity'],
  resources: { vcpus: 0.05, memoryMiB: 16, diskMiB: 16 },
  pool,
  ha: { enabled: true, priority: 0 },
  placement: { affinity: [group], ...(apart ? { antiAffinity: [apart] } : {}) },
});

/** The workloads' records, straight from Redis (null: no such workload). */
export async function workloadRecords(redis: Redis, keyPrefix: string, ids: string[]): Promise<Array<WorkloadRecord | null>> {
  const out: Array<WorkloadRecord | null> = [];
  for (let i = 0; i < ids.length; i += 1000) {
    const chunk = await redis.hmget(redisKeys(keyPrefix).workloads, ...ids.slice(i, i + 1000));
    for (const raw of chunk) out.push(raw ? (JSON.parse(raw) as WorkloadRecord) : null);
  }
  return out;
}

/** Waits until every one of `ids` is recorded running; returns their records. */
export async function waitRunning(redis: Redis, keyPrefix: string, ids: string[], timeoutMs: number, notOn: ReadonlySet<string> = new Set()): Promise<WorkloadRecord[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const records = await workloadRecords(redis, keyPrefix, ids);
    if (records.every((r) => r && r.phase === 'running' && r.hostId !== null && !notOn.has(r.hostId))) return records as WorkloadRecord[];
    const failed = records.filter((r) => r?.phase === 'failed').map((r) => `${r!.spec.id}: ${r!.error?.message ?? '?'}`);
    if (failed.length > 0) throw new Error(`${failed.length} workload(s) failed: ${failed.slice(0, 3).join('; ')}`);
    if (Date.now() > deadline) {
      const waiting = records.filter((r) => !(r && r.phase === 'running' && r.hostId !== null && !notOn.has(r.hostId)));
      throw new Error(
        `${waiting.length}/${ids.length} not running after ${timeoutMs} ms (e.g. ${JSON.stringify(waiting[0] ? { id: waiting[0].spec.id, phase: waiting[0].phase, host: waiting[0].hostId } : null)})`,
      );
    }
    await sleep(100);
  }
}

/**
 * Creates `perGroup` HA workloads in each affinity group, the first of every group before the
 * others, so that placement's affinity bonus gathers each group on the host its first one got.
 * With `apart`, the groups' first workloads share that anti-affinity group: every group on a host
 * of its own. Returns the groups' workload ids and the host each group's first workload runs on.
 */
export async function createHaGroups(
  a: Api,
  redis: Redis,
  keyPrefix: string,
  groups: Array<{ name: string; pool: string }>,
  perGroup: number,
  apart?: string,
  concurrency = 8,
): Promise<Array<{ name: string; ids: string[]; host: string }>> {
  const idsOf = (g: string) => Array.from({ length: perGroup }, (_, i) => `${g}-${String(i + 1).padStart(3, '0')}`);
  await pool(groups, concurrency, async (g) => void (await api(a, 'POST', '/v1/workloads', haSpec(idsOf(g.name)[0]!, g.pool, g.name, apart))));
  const firsts = await waitRunning(
    redis,
    keyPrefix,
    groups.map((g) => idsOf(g.name)[0]!),
    300_000,
  );
  const rest = groups.flatMap((g) =>
    idsOf(g.name)
      .slice(1)
      .map((id) => ({ id, g })),
  );
  await pool(rest, concurrency, async ({ id, g }) => void (await api(a, 'POST', '/v1/workloads', haSpec(id, g.pool, g.name))));
  await waitRunning(
    redis,
    keyPrefix,
    rest.map((r) => r.id),
    300_000,
  );
  return groups.map((g, i) => ({ name: g.name, ids: idsOf(g.name), host: firsts[i]!.hostId! }));
}

export interface FailoverResult {
  label: string;
  hostsKilled: number;
  workloads: number;
  /** killed → the scheduler's `down` of each host (the slowest), s */
  detectedDownS: number | null;
  /** killed → every workload recorded running on a live host, s */
  allRunningS: number | null;
  /** killed → the first / median workload recorded running elsewhere, s */
  firstRunningS: number | null;
  medianRunningS: number | null;
  /** workloads running on two live hosts at once (the simulator's view, every 100 ms while waiting, and at the end) */
  doubleOwners: number;
  /** workloads whose record names a host other than the one the simulator runs it on, at the end */
  recordMismatches: number;
  error: string | null;
}

/**
 * Kills `hosts` (the simulator's `kill`) and follows their HA workloads `ids` until every one is
 * recorded running on a live host: the times from the death, and double owners as the simulator
 * sees them (checked while waiting and at the end).
 */
export async function measureFailover(o: {
  label: string;
  redis: Redis;
  keyPrefix: string;
  hosts: string[];
  ids: string[];
  kill: (hosts: string[]) => Promise<number>;
  owners: (ids: string[]) => Promise<{ owners: Record<string, string[]>; doubleOwners: Array<{ workload: string; hosts: string[] }> }>;
  /** when the scheduler declared each host down (its host events), filled in as they come */
  downAt: ReadonlyMap<string, number>;
  timeoutMs: number;
}): Promise<FailoverResult> {
  const dead = new Set(o.hosts);
  const killedAt = await o.kill(o.hosts);
  const runningAt = new Map<string, number>();
  const doubles = new Set<string>();
  let error: string | null = null;
  const deadline = killedAt + o.timeoutMs;
  let checks = 0;
  while (runningAt.size < o.ids.length) {
    if (Date.now() > deadline) {
      error = `${o.ids.length - runningAt.size}/${o.ids.length} not running elsewhere after ${o.timeoutMs / 1000} s`;
      break;
    }
    const records = await workloadRecords(o.redis, o.keyPrefix, o.ids);
    const now = Date.now();
    for (const r of records) if (r && r.phase === 'running' && r.hostId && !dead.has(r.hostId) && !runningAt.has(r.spec.id)) runningAt.set(r.spec.id, now);
    if (checks++ % 5 === 0) for (const d of (await o.owners(o.ids)).doubleOwners) doubles.add(d.workload);
    if (runningAt.size < o.ids.length) await sleep(100);
  }
  const final = await o.owners(o.ids);
  for (const d of final.doubleOwners) doubles.add(d.workload);
  const records = await workloadRecords(o.redis, o.keyPrefix, o.ids);
  const recordMismatches = records.filter((r) => !r || r.hostId === null || !(final.owners[r.spec.id] ?? []).includes(r.hostId)).length;
  const times = [...runningAt.values()].map((t) => (t - killedAt) / 1000);
  const downs = o.hosts.map((h) => o.downAt.get(h));
  return {
    label: o.label,
    hostsKilled: o.hosts.length,
    workloads: o.ids.length,
    detectedDownS: downs.every((d) => d !== undefined) ? (Math.max(...(downs as number[])) - killedAt) / 1000 : null,
    allRunningS: error ? null : Math.max(...times),
    firstRunningS: times.length ? Math.min(...times) : null,
    medianRunningS: times.length ? percentile(times, 50) : null,
    doubleOwners: doubles.size,
    recordMismatches,
    error,
  };
}

export interface PlanResult {
  plans: number;
  moves: number;
  completed: number;
  other: string;
  seconds: number;
  movesPerSecond: number;
  /** move (migration) times, queued → ended, s */
  moveP50S: number;
  moveP99S: number;
  /** where a move's time went: medians, ms — queued (asked → its first phase) and each phase */
  breakdown: string;
  /** maintenance requests refused as stale (409) and asked again */
  refused: number;
}

/**
 * Puts `hosts` into maintenance at once: each an evacuation plan made and executed by the API
 * (POST /v1/hosts/:id/maintenance), every move a migration through the scheduler's queue, its
 * concurrency tokens and the simulated agents. Moves per second over the first request → the
 * last move's end.
 */
export async function measurePlans(a: Api, hosts: string[], timeoutMs: number): Promise<PlanResult> {
  const started = Date.now();
  const planIds: string[] = [];
  // One after another: a plan is stamped with the cluster's revision and refused (409, "plan
  // again") when anything changed in between — another host entering maintenance, or a move of an
  // earlier plan — so a refused request is asked again, and counted.
  let refused = 0;
  for (const host of hosts) {
    for (let attempt = 1; ; attempt++) {
      try {
        const answer = await api<{ plan: PlanRecord }>(a, 'POST', `/v1/hosts/${host}/maintenance`, { reason: 'bench: evacuation plan throughput' });
        planIds.push(answer.plan.id);
        break;
      } catch (err) {
        if (!/: 409 /.test((err as Error).message) || attempt >= 50) throw err;
        refused++;
        await sleep(100);
      }
    }
  }
  const deadline = started + timeoutMs;
  let plans: PlanRecord[] = [];
  for (;;) {
    plans = await Promise.all(planIds.map((id) => api<PlanRecord>(a, 'GET', `/v1/plans/${id}`)));
    const ended = plans.every((p) => p.state !== 'planned' && p.state !== 'executing' && p.moves.every((m) => m.status !== 'pending' && m.status !== 'running'));
    if (ended || Date.now() > deadline) break;
    await sleep(200);
  }
  const moves = plans.flatMap((p) => p.moves);
  const statuses = new Map<string, number>();
  for (const m of moves) statuses.set(m.status, (statuses.get(m.status) ?? 0) + 1);
  // each move's migration: when it was queued and when it ended
  const migrations = await Promise.all(
    moves.filter((m) => m.migrationId).map((m) => api<Pick<MigrationRecord, 'createdAt' | 'finishedAt' | 'updatedAt' | 'timeline'>>(a, 'GET', `/v1/migrations/${m.migrationId!}`).catch(() => null)),
  );
  const ends = migrations.filter((m) => m !== null).map((m) => m.finishedAt ?? m.updatedAt);
  const last = ends.length ? Math.max(...ends) : Date.now();
  const seconds = (last - started) / 1000;
  const completed = statuses.get('completed') ?? 0;
  const durations = migrations.filter((m) => m !== null).map((m) => ((m.finishedAt ?? m.updatedAt) - m.createdAt) / 1000);
  statuses.delete('completed');
  const parts = new Map<string, number[]>();
  const add = (name: string, ms: number) => {
    let list = parts.get(name);
    if (!list) parts.set(name, (list = []));
    list.push(ms);
  };
  for (const m of migrations) {
    if (!m || m.timeline.length === 0) continue;
    add('queued', m.timeline[0]!.startedAt - m.createdAt);
    for (const entry of m.timeline) if (entry.endedAt !== null) add(entry.phase, entry.endedAt - entry.startedAt);
  }
  const breakdown = [...parts].map(([name, ms]) => `${name} ${percentile(ms, 50).toFixed(0)}`).join(', ');
  return {
    plans: plans.length,
    moves: moves.length,
    completed,
    other: [...statuses].map(([s, n]) => `${n} ${s}`).join(', '),
    seconds,
    movesPerSecond: completed / seconds,
    moveP50S: percentile(durations, 50),
    moveP99S: percentile(durations, 99),
    breakdown,
    refused,
  };
}

/**
 * What one whole-cluster snapshot costs here: `ClusterStore.snapshot()` (the call POST
 * /v1/workloads, the scheduler's placement and each failover restart make) timed from the bench's
 * own process against the cluster's Redis — the median of `runs`, with the size of what it reads.
 */
export async function snapshotCost(redis: Redis, keyPrefix: string, log: Logger, runs = 5): Promise<{ ms: number; hosts: number; workloads: number; mib: number }> {
  const store = new ClusterStore(redis, keyPrefix, log);
  const times: number[] = [];
  let hosts = 0;
  let workloads = 0;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const snapshot = await store.snapshot();
    times.push(performance.now() - started);
    hosts = snapshot.hosts.length;
    workloads = snapshot.workloads.length;
  }
  const keys = redisKeys(keyPrefix);
  const bytes = Number(await redis.memory('USAGE', keys.hosts)) + Number(await redis.memory('USAGE', keys.workloads));
  return { ms: percentile(times, 50), hosts, workloads, mib: bytes / 2 ** 20 };
}
