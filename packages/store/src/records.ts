import type { Redis } from 'ioredis';
import type { z } from 'zod';
import type { Logger } from '@ferry/runtime';

/**
 * JSON records in one Redis hash (field = id). Every read is validated: a record that no longer
 * parses is logged and skipped, never trusted.
 */
export class HashRecords<S extends z.ZodType> {
  constructor(
    protected readonly redis: Redis,
    protected readonly key: string,
    private readonly schema: S,
    private readonly log: Logger,
    private readonly what: string,
  ) {}

  private parse(id: string, json: string): z.output<S> | null {
    try {
      return this.schema.parse(JSON.parse(json));
    } catch (err) {
      this.log.warn({ id, err }, `unreadable ${this.what} record in Redis; skipped`);
      return null;
    }
  }

  async get(id: string): Promise<z.output<S> | null> {
    const json = await this.redis.hget(this.key, id);
    return json === null ? null : this.parse(id, json);
  }

  /** Several records in one round trip, in the order asked (null where there is none). */
  async getMany(ids: string[]): Promise<Array<z.output<S> | null>> {
    if (ids.length === 0) return [];
    const values = await this.redis.hmget(this.key, ...ids);
    return values.map((json, i) => (json === null ? null : this.parse(ids[i]!, json)));
  }

  async all(): Promise<Array<z.output<S>>> {
    const raw = await this.redis.hgetall(this.key);
    return Object.entries(raw)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([id, json]) => this.parse(id, json))
      .filter((record): record is z.output<S> => record !== null);
  }

  async put(id: string, record: z.output<S>): Promise<void> {
    await this.redis.hset(this.key, id, JSON.stringify(record));
  }

  async putMany(entries: Array<[string, z.output<S>]>): Promise<void> {
    if (entries.length === 0) return;
    await this.redis.hset(this.key, ...entries.flatMap(([id, record]) => [id, JSON.stringify(record)]));
  }

  /** Stores only when no record with this id exists; false when one does. */
  async insert(id: string, record: z.output<S>): Promise<boolean> {
    return (await this.redis.hsetnx(this.key, id, JSON.stringify(record))) === 1;
  }

  async remove(id: string): Promise<void> {
    await this.redis.hdel(this.key, id);
  }
}
