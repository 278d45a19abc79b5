import { z } from 'zod';
import { flag, loadConfig, NATS_CONFIG_ENV, NATS_CONFIG_FIELDS, PLACEMENT_ENV, PLACEMENT_SETTINGS, REDIS_CONFIG_ENV, REDIS_CONFIG_FIELDS } from '@ferry/runtime';
import { MAX_REBALANCE_MOVES } from '@ferry/protocol';

export const SchedulerConfig = z
  .object({
    ...NATS_CONFIG_FIELDS,
    /** redisUrl (no credentials in it), redisUser, redisPasswordFile */
    ...REDIS_CONFIG_FIELDS,
    /** prefix of every Redis key and BullMQ queue, so several clusters can share one Redis */
    keyPrefix: z
      .string()
      .regex(/^[a-z0-9_-]{1,32}$/)
      .default('ferry'),
    suspectAfterMs: z.coerce.number().int().min(100).default(3_000),
    /**
     * an agent that cannot renew its lease this long fences itself (acknowledged reports renew
     * it). 5 s = five missed reports: short enough for failover within 10 s (bench/RESULTS.md),
     * long enough that a lost report or two never fences anything.
     */
    leaseMs: z.coerce.number().int().min(100).default(5_000),
    /** down only after the lease plus a margin: by then a cut-off agent has fenced itself */
    downAfterMs: z.coerce.number().int().min(200).default(7_000),
    livenessCheckMs: z.coerce.number().int().min(20).max(10_000).default(250),
    /** host records and counters are written to Redis in batches at this period */
    flushMs: z.coerce.number().int().min(10).max(10_000).default(200),
    rejectLogWindowMs: z.coerce.number().int().min(0).default(60_000),
    /** cpuBaseline, placementMode, haAdmission: the same settings (and variables) as the API's */
    ...PLACEMENT_SETTINGS,
    /**
     * workload jobs run at the same time by this scheduler: most of a job is waiting for an agent,
     * so many run at once across the cluster (4 at a time held 1,000 creates to ~100/s with
     * instant agents, bench/RESULTS.md) while commandsPerHost protects each agent. The creates
     * waiting for a host are placed together, one model of the cluster per batch: 32 jobs in
     * flight made batches of a few and 10,000 creates at 1,000 hosts went at 58/s, 128 at 115/s
     * (bench/RESULTS.md, "Scale: the API's create path")
     */
    workloadConcurrency: z.coerce.number().int().min(1).max(512).default(128),
    /** container commands (create, start, stop, destroy) in flight to one host from this scheduler */
    commandsPerHost: z.coerce.number().int().min(1).max(64).default(4),
    /**
     * How long a job (and the workload lock it holds) outlives a scheduler that died: BullMQ's
     * lock duration and stalled-job check, and the workload lock's TTL. Renewed while alive.
     */
    jobLockMs: z.coerce.number().int().min(1000).max(600_000).default(30_000),
    /** DRS-style automatic rebalancing, on the leader scheduler only */
    autoRebalance: flag().default(false),
    rebalanceIntervalMs: z.coerce.number().int().min(500).default(60_000),
    rebalanceThreshold: z.coerce.number().min(0).default(0.05),
    rebalanceRounds: z.coerce.number().int().min(1).max(100).default(3),
    rebalanceMaxMoves: z.coerce.number().int().min(1).max(MAX_REBALANCE_MOVES).default(5),
    rebalanceCooldownMs: z.coerce.number().int().min(0).default(600_000),
    /** how long a dead leader keeps the leadership */
    leaderTtlMs: z.coerce.number().int().min(500).default(10_000),
    /** Prometheus metrics at http://<metricsHost>:<metricsPort>/metrics; port 0 = any free port */
    metricsHost: z.string().min(1).default('127.0.0.1'),
    metricsPort: z.coerce.number().int().min(0).max(65_535).default(9464),
    /** migrations at once leaving one host, arriving on one host, and touching one pool (excess waits) */
    migrationsPerSource: z.coerce.number().int().min(1).max(64).default(2),
    migrationsPerDestination: z.coerce.number().int().min(1).max(64).default(2),
    migrationsPerPool: z.coerce.number().int().min(1).max(256).default(4),
    /** failover restarts in flight at once (placement decisions stay one at a time, in priority order) */
    failoverConcurrency: z.coerce.number().int().min(1).max(256).default(8),
    /** migrations driven at the same time by this scheduler */
    migrationConcurrency: z.coerce.number().int().min(1).max(64).default(4),
    /** how long an agent may take to answer one command (a create copies a root filesystem) */
    agentTimeoutMs: z.coerce.number().int().min(100).max(3_600_000).default(120_000),
  })
  .refine((config) => config.downAfterMs > config.suspectAfterMs, {
    path: ['downAfterMs'],
    message: 'must be greater than suspectAfterMs',
  })
  // The margin covers what happens between the lease running out and the host being declared
  // down: the agent's fencing (or its fence guard's, 500 ms late by default) must be over first.
  .refine((config) => config.downAfterMs >= config.leaseMs + 1000, {
    path: ['downAfterMs'],
    message: 'must be at least leaseMs + 1000 (a host is declared down only after its lease ran out and it had time to fence itself)',
  });
export type SchedulerConfig = z.infer<typeof SchedulerConfig>;

export const SCHEDULER_ENV = {
  ...PLACEMENT_ENV,
  ...NATS_CONFIG_ENV,
  ...REDIS_CONFIG_ENV,
  FERRY_KEY_PREFIX: 'keyPrefix',
  FERRY_SUSPECT_AFTER_MS: 'suspectAfterMs',
  FERRY_DOWN_AFTER_MS: 'downAfterMs',
  FERRY_LEASE_MS: 'leaseMs',
  FERRY_LIVENESS_CHECK_MS: 'livenessCheckMs',
  FERRY_FLUSH_MS: 'flushMs',
  FERRY_REJECT_LOG_WINDOW_MS: 'rejectLogWindowMs',
  FERRY_WORKLOAD_CONCURRENCY: 'workloadConcurrency',
  FERRY_COMMANDS_PER_HOST: 'commandsPerHost',
  FERRY_FAILOVER_CONCURRENCY: 'failoverConcurrency',
  FERRY_AGENT_TIMEOUT_MS: 'agentTimeoutMs',
  FERRY_MIGRATION_CONCURRENCY: 'migrationConcurrency',
  FERRY_JOB_LOCK_MS: 'jobLockMs',
  FERRY_AUTO_REBALANCE: 'autoRebalance',
  FERRY_REBALANCE_INTERVAL_MS: 'rebalanceIntervalMs',
  FERRY_REBALANCE_THRESHOLD: 'rebalanceThreshold',
  FERRY_REBALANCE_ROUNDS: 'rebalanceRounds',
  FERRY_REBALANCE_MAX_MOVES: 'rebalanceMaxMoves',
  FERRY_REBALANCE_COOLDOWN_MS: 'rebalanceCooldownMs',
  FERRY_LEADER_TTL_MS: 'leaderTtlMs',
  FERRY_METRICS_HOST: 'metricsHost',
  FERRY_METRICS_PORT: 'metricsPort',
  FERRY_MIGRATIONS_PER_SOURCE: 'migrationsPerSource',
  FERRY_MIGRATIONS_PER_DESTINATION: 'migrationsPerDestination',
  FERRY_MIGRATIONS_PER_POOL: 'migrationsPerPool',
};

export function loadSchedulerConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): SchedulerConfig {
  return loadConfig(SchedulerConfig, { file, env, envMap: SCHEDULER_ENV });
}
