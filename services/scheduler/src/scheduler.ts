import { Redis } from 'ioredis';
import type { NatsConnection } from 'nats';
import { connectNats, type Logger } from '@ferry/runtime';
import type { SchedulerConfig } from './config.ts';
import { CapacityService } from './capacity/service.ts';

export interface Scheduler {
  capacity: CapacityService;
  stop(): Promise<void>;
}

export async function startScheduler(config: SchedulerConfig, log: Logger): Promise<Scheduler> {
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null, lazyConnect: true });
  redis.on('error', (err) => log.error({ err: err.message }, 'Redis error'));
  await redis.connect();
  const nc: NatsConnection = await connectNats(config.natsUrl, 'ferry-scheduler', log);
  const capacity = new CapacityService(config, nc, redis, log.child({ part: 'capacity' }));
  await capacity.start();
  log.info('scheduler started');
  return {
    capacity,
    async stop() {
      await capacity.stop();
      await nc.drain();
      redis.disconnect();
    },
  };
}
