import type { Redis } from 'ioredis';
import { CAPACITY_REJECTIONS, HostRecord, redisKeys, type StatsResponse } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';

/** Read side of the cluster state the scheduler writes to Redis. */
export class ClusterStore {
  private readonly keys;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly log: Logger,
  ) {
    this.keys = redisKeys(prefix);
  }

  private parseHost(id: string, json: string): HostRecord | null {
    try {
      return HostRecord.parse(JSON.parse(json));
    } catch (err) {
      this.log.warn({ hostId: id, err }, 'unreadable host record in Redis; skipped');
      return null;
    }
  }

  async hosts(): Promise<HostRecord[]> {
    const raw = await this.redis.hgetall(this.keys.hosts);
    return Object.entries(raw)
      .map(([id, json]) => this.parseHost(id, json))
      .filter((record): record is HostRecord => record !== null)
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  async host(id: string): Promise<HostRecord | null> {
    const json = await this.redis.hget(this.keys.hosts, id);
    return json === null ? null : this.parseHost(id, json);
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
