import type { Redis } from 'ioredis';

/**
 * Counting semaphores in Redis (a sorted set of holders with expiry times): at most `limit`
 * migrations per source host, per destination host and per storage pool run at once; the rest
 * wait, as vMotion's do. A holder that dies frees its token at expiry.
 */
const ACQUIRE = `
local now = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local holder = ARGV[3]
for i, key in ipairs(KEYS) do
  redis.call('zremrangebyscore', key, '-inf', now)
  if not redis.call('zscore', key, holder) and redis.call('zcard', key) >= tonumber(ARGV[3 + i]) then
    return i
  end
end
for i, key in ipairs(KEYS) do redis.call('zadd', key, expiry, holder) end
return 0`;

export interface TokenRequest {
  key: string;
  limit: number;
}

export class Tokens {
  constructor(
    private readonly redis: Redis,
    private readonly ttlMs: number,
  ) {}

  /** All tokens or none; returns the key that was full, or null when all were taken. */
  async acquire(holder: string, requests: TokenRequest[]): Promise<string | null> {
    const now = Date.now();
    const full = (await this.redis.eval(ACQUIRE, requests.length, ...requests.map((r) => r.key), String(now), String(now + this.ttlMs), holder, ...requests.map((r) => String(r.limit)))) as number;
    return full === 0 ? null : requests[full - 1]!.key;
  }

  async renew(holder: string, keys: string[]): Promise<void> {
    const expiry = Date.now() + this.ttlMs;
    const pipeline = this.redis.pipeline();
    for (const key of keys) pipeline.zadd(key, 'XX', expiry, holder);
    await pipeline.exec();
  }

  async release(holder: string, keys: string[]): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const key of keys) pipeline.zrem(key, holder);
    await pipeline.exec();
  }
}
