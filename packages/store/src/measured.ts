import type { Redis } from 'ioredis';
import { MeasuredMigration } from '@ferry/protocol';

/** How many completed migrations are kept for predictions to learn from (newest first). */
export const MEASURED_KEPT = 500;

/**
 * The measurements of completed migrations, newest first, in one capped Redis list: written by the
 * scheduler when a migration completes, read wherever a move is predicted (the API's migrate and
 * plan routes, plan execution). Unreadable entries are skipped.
 */
export class MeasuredMigrations {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  async add(measured: MeasuredMigration): Promise<void> {
    await this.redis
      .multi()
      .lpush(this.key, JSON.stringify(measured))
      .ltrim(this.key, 0, MEASURED_KEPT - 1)
      .exec();
  }

  async recent(limit = MEASURED_KEPT): Promise<MeasuredMigration[]> {
    const raw = await this.redis.lrange(this.key, 0, limit - 1);
    return raw.flatMap((json) => {
      try {
        const parsed = MeasuredMigration.safeParse(JSON.parse(json));
        return parsed.success ? [parsed.data] : [];
      } catch {
        return [];
      }
    });
  }
}
