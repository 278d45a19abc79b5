import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '@ferry/runtime';

const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RESIGN = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * Leader election among scheduler replicas through one Redis key with a TTL: whoever sets it
 * leads and renews it every ttl/3; a leader that dies loses it within the TTL and another takes
 * over. Periodic cluster-wide work (automatic rebalancing, failover) runs only on the leader.
 */
export class LeaderElection {
  /** who leads, readable in the key: this process's pid and a random part */
  private readonly token = `${process.pid}.${randomBytes(8).toString('hex')}`;
  private leading = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {}

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    const tick = async () => {
      try {
        const was = this.leading;
        if (this.leading) this.leading = (await this.redis.eval(RENEW, 1, this.key, this.token, String(this.ttlMs))) === 1;
        if (!this.leading) this.leading = (await this.redis.set(this.key, this.token, 'PX', this.ttlMs, 'NX')) === 'OK';
        if (was !== this.leading) this.log.info({ leader: this.leading }, this.leading ? 'became the leader' : 'lost the leadership');
      } catch (err) {
        if (this.leading) this.log.warn({ err: (err as Error).message }, 'cannot renew the leadership; stepping down');
        this.leading = false;
      }
    };
    void tick();
    this.timer = setInterval(() => void tick(), Math.max(100, Math.floor(this.ttlMs / 3)));
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    if (this.leading) await this.redis.eval(RESIGN, 1, this.key, this.token).catch(() => undefined);
    this.leading = false;
  }
}
