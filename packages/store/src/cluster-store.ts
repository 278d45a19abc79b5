import type { Redis } from 'ioredis';
import type { ClusterSnapshot } from '@ferry/core';
import { CAPACITY_REJECTIONS, HostRecord, WorkloadRecord, redisKeys, type StatsResponse } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { HashRecords } from './records.ts';

/** The cluster state every service reads and the scheduler (and API, for new workloads) writes. */
export class ClusterStore {
  readonly keys;
  readonly hosts: HashRecords<typeof HostRecord>;
  readonly workloads: HashRecords<typeof WorkloadRecord>;

  constructor(
    readonly redis: Redis,
    prefix: string,
    log: Logger,
  ) {
    this.keys = redisKeys(prefix);
    this.hosts = new HashRecords(redis, this.keys.hosts, HostRecord, log, 'host');
    this.workloads = new HashRecords(redis, this.keys.workloads, WorkloadRecord, log, 'workload');
  }

  async snapshot(): Promise<ClusterSnapshot> {
    const [hosts, workloads] = await Promise.all([this.hosts.all(), this.workloads.all()]);
    return { hosts, workloads };
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

  async ping(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }
}
