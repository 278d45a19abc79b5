import { z } from 'zod';
import { loadConfig } from '@ferry/runtime';

export const SchedulerConfig = z
  .object({
    natsUrl: z.string().min(1).default('nats://127.0.0.1:4222'),
    redisUrl: z.string().min(1).default('redis://127.0.0.1:6379'),
    /** prefix of every Redis key and BullMQ queue, so several clusters can share one Redis */
    keyPrefix: z.string().regex(/^[a-z0-9_-]{1,32}$/).default('ferry'),
    suspectAfterMs: z.coerce.number().int().min(100).default(3_000),
    downAfterMs: z.coerce.number().int().min(200).default(10_000),
    livenessCheckMs: z.coerce.number().int().min(20).max(10_000).default(250),
    /** host records and counters are written to Redis in batches at this period */
    flushMs: z.coerce.number().int().min(10).max(10_000).default(200),
    rejectLogWindowMs: z.coerce.number().int().min(0).default(60_000),
    /** where new workloads go: spread (most memory left) or binpack (fullest that fits) */
    placementMode: z.enum(['spread', 'binpack']).default('spread'),
    /** workload jobs run at the same time by this scheduler */
    workloadConcurrency: z.coerce.number().int().min(1).max(64).default(4),
    /**
     * How long a job (and the workload lock it holds) outlives a scheduler that died: BullMQ's
     * lock duration and stalled-job check, and the workload lock's TTL. Renewed while alive.
     */
    jobLockMs: z.coerce.number().int().min(1000).max(600_000).default(30_000),
    /** migrations at once leaving one host, arriving on one host, and touching one pool (excess waits) */
    migrationsPerSource: z.coerce.number().int().min(1).max(64).default(2),
    migrationsPerDestination: z.coerce.number().int().min(1).max(64).default(2),
    migrationsPerPool: z.coerce.number().int().min(1).max(256).default(4),
    /** migrations driven at the same time by this scheduler */
    migrationConcurrency: z.coerce.number().int().min(1).max(64).default(4),
    /** how long an agent may take to answer one command (a create copies a root filesystem) */
    agentTimeoutMs: z.coerce.number().int().min(100).max(3_600_000).default(120_000),
  })
  .refine((config) => config.downAfterMs > config.suspectAfterMs, {
    path: ['downAfterMs'],
    message: 'must be greater than suspectAfterMs',
  });
export type SchedulerConfig = z.infer<typeof SchedulerConfig>;

export const SCHEDULER_ENV = {
  FERRY_NATS_URL: 'natsUrl',
  FERRY_REDIS_URL: 'redisUrl',
  FERRY_KEY_PREFIX: 'keyPrefix',
  FERRY_SUSPECT_AFTER_MS: 'suspectAfterMs',
  FERRY_DOWN_AFTER_MS: 'downAfterMs',
  FERRY_LIVENESS_CHECK_MS: 'livenessCheckMs',
  FERRY_FLUSH_MS: 'flushMs',
  FERRY_REJECT_LOG_WINDOW_MS: 'rejectLogWindowMs',
  FERRY_WORKLOAD_CONCURRENCY: 'workloadConcurrency',
  FERRY_PLACEMENT_MODE: 'placementMode',
  FERRY_AGENT_TIMEOUT_MS: 'agentTimeoutMs',
  FERRY_MIGRATION_CONCURRENCY: 'migrationConcurrency',
  FERRY_JOB_LOCK_MS: 'jobLockMs',
};

export function loadSchedulerConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): SchedulerConfig {
  return loadConfig(SchedulerConfig, { file, env, envMap: SCHEDULER_ENV });
}
