import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

/**
 * What proves that a writer still holds a lock: the lock's key and the token of this one
 * acquisition. Writes made under a fence (see FencedWrites) land only while the key still holds
 * that token — a holder that was paused past its TTL, and whose lock another took, writes nothing.
 */
export interface LockFence {
  key: string;
  token: string;
}

/** The lock this holder took has lapsed and belongs to someone else (or to nobody) now. */
export class LockLostError extends Error {
  constructor(readonly key: string) {
    super(`lost the lock ${key}: another holder took over (this one was paused or cut off past the lock's TTL)`);
    this.name = 'LockLostError';
  }
}

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

  get fence(): LockFence {
    return { key: this.key, token: this.token };
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
 *
 * `owner` names the holder (it shows in Redis); the token is the owner plus a random suffix, so
 * two acquisitions by the same owner (one paused past the TTL, one that took over) are told
 * apart: the paused one can no longer extend, release or write under the other's lock.
 */
export async function withLock<T>(redis: Redis, key: string, owner: string, ttlMs: number, work: (lock: RedisLock) => Promise<T>): Promise<{ value: T } | null> {
  const lock = await RedisLock.acquire(redis, key, ttlMs, `${owner}#${randomBytes(6).toString('hex')}`);
  if (!lock) return null;
  const heartbeat = setInterval(() => void lock.extend(ttlMs).catch(() => undefined), Math.max(100, Math.floor(ttlMs / 3)));
  try {
    return { value: await work(lock) };
  } finally {
    clearInterval(heartbeat);
    await lock.release().catch(() => undefined);
  }
}
