import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/** A Redis lock with an owner token and a TTL, so a holder that dies frees it by expiry. */
export class RedisLock {
  private constructor(
    private readonly redis: Redis,
    readonly key: string,
    readonly token: string,
  ) {}

  static async acquire(redis: Redis, key: string, ttlMs: number, token = randomBytes(12).toString('hex')): Promise<RedisLock | null> {
    const ok = await redis.set(key, token, 'PX', ttlMs, 'NX');
    return ok === 'OK' ? new RedisLock(redis, key, token) : null;
  }

  static async isHeld(redis: Redis, key: string): Promise<boolean> {
    return (await redis.exists(key)) === 1;
  }

  async extend(ttlMs: number): Promise<boolean> {
    return (await this.redis.eval(EXTEND, 1, this.key, this.token, String(ttlMs))) === 1;
  }

  async release(): Promise<void> {
    await this.redis.eval(RELEASE, 1, this.key, this.token);
  }
}

/**
 * Runs `work` while holding the lock, renewing it every ttl/3 so that it never lapses while the
 * holder lives, and lapses within `ttlMs` when the holder dies. Returns null (without running)
 * when someone else holds it.
 */
export async function withLock<T>(redis: Redis, key: string, token: string, ttlMs: number, work: () => Promise<T>): Promise<{ value: T } | null> {
  const lock = await RedisLock.acquire(redis, key, ttlMs, token);
  if (!lock) return null;
  const heartbeat = setInterval(() => void lock.extend(ttlMs).catch(() => undefined), Math.max(100, Math.floor(ttlMs / 3)));
  try {
    return { value: await work() };
  } finally {
    clearInterval(heartbeat);
    await lock.release().catch(() => undefined);
  }
}
