import type { Redis } from 'ioredis';
import { HostRecord, redisKeys } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';

/** Host records in Redis: one hash field per host, JSON-encoded. */
export class HostRepository {
  private readonly key: string;

  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly log: Logger,
  ) {
    this.key = redisKeys(prefix).hosts;
  }

  async saveMany(records: HostRecord[]): Promise<void> {
    if (records.length === 0) return;
    const fields: string[] = [];
    for (const record of records) fields.push(record.id, JSON.stringify(record));
    await this.redis.hset(this.key, ...fields);
  }

  /** Every stored record that still parses; others are logged and skipped (never trusted blindly). */
  async loadAll(): Promise<HostRecord[]> {
    const raw = await this.redis.hgetall(this.key);
    const records: HostRecord[] = [];
    for (const [id, json] of Object.entries(raw)) {
      try {
        records.push(HostRecord.parse(JSON.parse(json)));
      } catch (err) {
        this.log.warn({ hostId: id, err }, 'ignoring unreadable host record in Redis');
      }
    }
    return records;
  }
}
