import type { Redis } from 'ioredis';
import type { ClusterSnapshot } from '@ferry/core';
import {
  CAPACITY_REJECTIONS,
  CopyToDiscard,
  FailoverRecord,
  HostHistoryEntry,
  HostRecord,
  MaintenanceRecord,
  DeferredMigrationStep,
  MigrationRecord,
  PlanRecord,
  RemovedHost,
  WORKLOAD_INDEX_FIELD,
  WorkloadRecord,
  redisKeys,
  type StatsResponse,
} from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { FencedWrites, type WorkloadWrites } from './fenced.ts';
import type { LockFence } from './lock.ts';
import { MeasuredMigrations } from './measured.ts';
import { HashRecords } from './records.ts';

/** The cluster state every service reads and the scheduler (and API, for new workloads) writes. */
export class ClusterStore {
  readonly keys;
  readonly hosts: HashRecords<typeof HostRecord>;
  readonly workloads: HashRecords<typeof WorkloadRecord>;
  readonly migrations: HashRecords<typeof MigrationRecord>;
  readonly maintenance: HashRecords<typeof MaintenanceRecord>;
  readonly plans: HashRecords<typeof PlanRecord>;
  readonly failovers: HashRecords<typeof FailoverRecord>;
  readonly deferredSteps: HashRecords<typeof DeferredMigrationStep>;
  /** hosts an operator removed (their reports are dropped until admitted again) */
  readonly removedHosts: HashRecords<typeof RemovedHost>;
  /** copies of deleted workloads to discard when their host reports again, by `<host>/<workload>` */
  readonly copyDiscards: HashRecords<typeof CopyToDiscard>;
  /** completed migrations as measured (predictions learn from them) */
  readonly measuredMigrations: MeasuredMigrations;

  constructor(
    readonly redis: Redis,
    prefix: string,
    log: Logger,
  ) {
    this.keys = redisKeys(prefix);
    this.hosts = new HashRecords(redis, this.keys.hosts, HostRecord, log, 'host');
    // with a change log: the scheduler and the API keep a copy of every workload (RecordCache);
    // indexed by host: one host's workloads are read without reading the others
    this.workloads = new HashRecords(redis, this.keys.workloads, WorkloadRecord, log, 'workload', { changeLog: true, indexBy: WORKLOAD_INDEX_FIELD });
    this.migrations = new HashRecords(redis, this.keys.migrations, MigrationRecord, log, 'migration');
    this.deferredSteps = new HashRecords(redis, this.keys.deferredMigrationSteps, DeferredMigrationStep, log, 'deferred migration step');
    this.maintenance = new HashRecords(redis, this.keys.maintenance, MaintenanceRecord, log, 'maintenance');
    this.plans = new HashRecords(redis, this.keys.plans, PlanRecord, log, 'plan');
    this.failovers = new HashRecords(redis, this.keys.failovers, FailoverRecord, log, 'failover');
    this.removedHosts = new HashRecords(redis, this.keys.removedHosts, RemovedHost, log, 'removed host');
    this.copyDiscards = new HashRecords(redis, this.keys.copyDiscards, CopyToDiscard, log, 'copy to discard');
    this.measuredMigrations = new MeasuredMigrations(redis, this.keys.measuredMigrations);
  }

  /**
   * Registers a new migration only if the workload has none in progress (one atomic HSETNX on
   * the active index, then the record). Returns the id of the migration already running, if any.
   */
  async beginMigration(record: MigrationRecord): Promise<string | null> {
    const claimed = await this.redis.hsetnx(this.keys.activeMigrations, record.workloadId, record.id);
    if (claimed === 0) return (await this.redis.hget(this.keys.activeMigrations, record.workloadId)) ?? 'unknown';
    await this.migrations.put(record.id, record);
    return null;
  }

  /** Appends to a host's history (newest first, the last 1,000 kept). */
  async addHistory(hostId: string, entry: HostHistoryEntry): Promise<void> {
    const key = this.keys.history(hostId);
    await this.redis.multi().lpush(key, JSON.stringify(entry)).ltrim(key, 0, 999).exec();
  }

  async history(hostId: string, limit = 200): Promise<HostHistoryEntry[]> {
    const raw = await this.redis.lrange(this.keys.history(hostId), 0, limit - 1);
    return raw.flatMap((json) => {
      const parsed = HostHistoryEntry.safeParse(JSON.parse(json));
      return parsed.success ? [parsed.data] : [];
    });
  }

  /** True the first time `id` is seen (across replicas); for recording reported events once. */
  async firstSight(id: string, ttlSeconds = 86_400): Promise<boolean> {
    return (await this.redis.set(`${this.keys.hosts}:seen:${id}`, '1', 'EX', ttlSeconds, 'NX')) === 'OK';
  }

  async requestCancel(migrationId: string): Promise<void> {
    await this.redis.sadd(this.keys.migrationCancels, migrationId);
  }

  /** A plan's cancel: kept apart from its record, which the plan worker rewrites as its stages start. */
  async requestPlanCancel(planId: string): Promise<void> {
    await this.redis.sadd(this.keys.planCancels, planId);
  }

  async planCancelRequested(planId: string): Promise<boolean> {
    return (await this.redis.sismember(this.keys.planCancels, planId)) === 1;
  }

  async clearPlanCancel(planId: string): Promise<void> {
    await this.redis.srem(this.keys.planCancels, planId);
  }

  async cancelRequested(migrationId: string): Promise<boolean> {
    return (await this.redis.sismember(this.keys.migrationCancels, migrationId)) === 1;
  }

  async activeMigration(workloadId: string): Promise<string | null> {
    return this.redis.hget(this.keys.activeMigrations, workloadId);
  }

  /** Frees the workload for the next migration, if this one still holds it. */
  async endMigration(record: MigrationRecord): Promise<void> {
    const holder = await this.redis.hget(this.keys.activeMigrations, record.workloadId);
    if (holder === record.id) await this.redis.hdel(this.keys.activeMigrations, record.workloadId);
    await this.redis.srem(this.keys.migrationCancels, record.id);
  }

  /**
   * The writes a migration makes while it holds its workload's lock, each landing only while the
   * lock is still this holder's (one writer per record: a holder paused past its TTL writes nothing
   * after another took over).
   */
  writesUnder(fence: LockFence): WorkloadWrites {
    return new FencedWrites(
      this.redis,
      { workloads: this.keys.workloads, workloadChanges: this.workloads.changes!, workloadIndex: this.workloads.fieldIndex!, migrations: this.keys.migrations },
      fence,
    );
  }

  async snapshot(): Promise<ClusterSnapshot> {
    const [hosts, workloads, maintenance] = await Promise.all([this.hosts.all(), this.workloads.all(), this.maintenance.all()]);
    return { hosts, workloads, maintenance };
  }

  async addCapacityCounts(counts: Map<string, number>): Promise<void> {
    if (counts.size === 0) return;
    const pipeline = this.redis.pipeline();
    for (const [field, count] of counts) pipeline.hincrby(this.keys.capacityStats, field, count);
    await pipeline.exec();
  }

  async capacityStats(): Promise<StatsResponse['capacityReports']> {
    const raw = await this.redis.hgetall(this.keys.capacityStats);
    const count = (field: string) => Number(raw[field] ?? 0);
    const rejected = Object.fromEntries(CAPACITY_REJECTIONS.map((reason) => [reason, count(`rejected:${reason}`)]));
    return { accepted: count('accepted'), rejected: rejected as StatsResponse['capacityReports']['rejected'] };
  }

  /** Whether Redis answers within `timeoutMs` (health checks must not hang while it is away). */
  async ping(timeoutMs = 1_000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve('TIMEOUT'), timeoutMs);
      });
      return (await Promise.race([this.redis.ping(), timeout])) === 'PONG';
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}
