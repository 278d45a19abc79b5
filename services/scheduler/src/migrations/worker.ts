import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { NatsConnection } from 'nats';
import { MigrationJobData, QUEUES, TERMINAL_MIGRATION_STATES, queuePrefix, type MigrationRecord } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { LockLostError, withLock, type ClusterStore } from '@ferry/store';
import { committing, type PlacementPolicy } from '@ferry/core';
import type { AgentClient } from '../workloads/agent-client.ts';
import { DEFAULT_TIMEOUTS, MigrationRunner, type ClusterSource } from './runner.ts';
import { Tokens, type TokenRequest } from './tokens.ts';

export interface ConcurrencyLimits {
  perSource: number;
  perDestination: number;
  perPool: number;
}

const BUSY_RETRY_MS = 500;
/** pause before a committed migration whose job ran out of attempts is queued again */
const COMMITTED_RETRY_MS = 10_000;

export interface MigrationWorkerOptions {
  keyPrefix: string;
  concurrency: number;
  /** BullMQ lock duration and stalled check, and the workload lock's TTL */
  lockMs: number;
  limits: ConcurrencyLimits;
  policy: PlacementPolicy;
  store: ClusterStore;
  agents: AgentClient;
  nc: NatsConnection;
  connection: Redis;
  log: Logger;
  /** told of every migration that ended (metrics) */
  onFinished?: (record: MigrationRecord) => void;
  /** where the runner's checks read the cluster (the scheduler's ClusterCopy); absent: Redis, whole, per check */
  cluster?: ClusterSource;
}

/**
 * One BullMQ job per migration (job id = migration id). The job holds the workload's lock for the
 * whole migration, so no start, stop, destroy or second migration of it runs meanwhile.
 */
export class MigrationWorker {
  private worker: Worker | undefined;
  private readonly tokens: Tokens;

  constructor(private readonly o: MigrationWorkerOptions) {
    this.tokens = new Tokens(o.store.redis, o.lockMs);
  }

  start(): void {
    this.worker = new Worker(QUEUES.migrations, (job, token) => this.process(job, token), {
      connection: this.o.connection,
      prefix: queuePrefix(this.o.keyPrefix),
      concurrency: this.o.concurrency,
      lockDuration: this.o.lockMs,
      stalledInterval: this.o.lockMs,
    });
    this.worker.on('failed', (job, err) => void this.onFailed(job, err));
    this.worker.on('error', (err) => this.o.log.error({ err }, 'migration worker error'));
  }

  /** A migration whose last attempt failed is left for an operator, saying so. */
  private async onFailed(job: Job | undefined, err: Error): Promise<void> {
    if (!job || job.attemptsMade < (job.opts.attempts ?? 1)) return;
    const data = MigrationJobData.safeParse(job.data);
    if (!data.success) return;
    const record = await this.o.store.migrations.get(data.data.migrationId);
    if (!record || TERMINAL_MIGRATION_STATES.has(record.state)) return;
    if (record.completed.includes('commit') || committing(record)) {
      // After the commit (or once the destination verified the workload and only the commit's
      // write is left) nothing can fail back and "failed" would be a lie (the workload runs on
      // the destination): the job is queued again, with its attempts counted afresh.
      this.o.log.error({ migrationId: record.id, err: err.message }, 'commit or cleanup ran out of attempts: queued again');
      setTimeout(() => {
        job
          .retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true })
          .catch((retryErr: unknown) => this.o.log.error({ migrationId: record.id, err: (retryErr as Error).message }, 'queueing the cleanup again failed'));
      }, COMMITTED_RETRY_MS).unref();
      return;
    }
    this.o.log.error({ migrationId: record.id, err: err.message }, 'migration gave up: an operator must look at it');
    const failed: MigrationRecord = {
      ...record,
      state: 'failed',
      error: record.error ?? { code: 'GAVE_UP', message: err.message, phase: record.phase },
      updatedAt: Date.now(),
      finishedAt: Date.now(),
    };
    await this.o.store.migrations.put(record.id, failed);
    this.o.onFinished?.(failed);
  }

  async stop(graceMs = 3_000): Promise<void> {
    if (!this.worker) return;
    const closed = this.worker.close();
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
    if ((await Promise.race([closed, timer])) === 'timeout') await this.worker.close(true);
  }

  private async process(job: Job, token?: string): Promise<MigrationRecord> {
    const data = MigrationJobData.safeParse(job.data);
    if (job.name !== 'migrate' || !data.success) throw new UnrecoverableError(`malformed migration job ${job.name}`);
    const record = await this.o.store.migrations.get(data.data.migrationId);
    if (!record) throw new UnrecoverableError(`no migration ${data.data.migrationId}`);
    const log = this.o.log.child({ migrationId: record.id, workload: record.workloadId, source: record.source, destination: record.destination, strategy: record.strategy });
    // Concurrency tokens: excess migrations wait for a slot on their hosts and pool.
    const workload = await this.o.store.workloads.get(record.workloadId);
    const prefix = `${this.o.store.keys.migrations}:tokens`;
    const wanted: TokenRequest[] = [
      { key: `${prefix}:source:${record.source}`, limit: this.o.limits.perSource },
      { key: `${prefix}:destination:${record.destination}`, limit: this.o.limits.perDestination },
      ...(workload ? [{ key: `${prefix}:pool:${workload.spec.pool}`, limit: this.o.limits.perPool }] : []),
    ];
    const keys = wanted.map((t) => t.key);
    if (!TERMINAL_MIGRATION_STATES.has(record.state)) {
      const full = await this.tokens.acquire(record.id, wanted);
      if (full) {
        log.debug({ full }, 'waiting for a migration slot');
        await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
        throw new DelayedError();
      }
    }
    const renew = setInterval(() => void this.tokens.renew(record.id, keys).catch(() => undefined), Math.max(100, Math.floor(this.o.lockMs / 3)));
    try {
      return await this.runHoldingTokens(job, token, record, log);
    } finally {
      clearInterval(renew);
      await this.tokens.release(record.id, keys).catch(() => undefined);
    }
  }

  private async runHoldingTokens(job: Job, token: string | undefined, record: MigrationRecord, log: Logger): Promise<MigrationRecord> {
    const held = await withLock(this.o.store.redis, this.o.store.keys.workloadLock(record.workloadId), record.id, this.o.lockMs, (lock) => {
      const runner = new MigrationRunner(
        record,
        this.o.store,
        this.o.store.writesUnder(lock.fence),
        this.o.agents,
        this.o.nc,
        log,
        async (r) => {
          await job.updateProgress({
            state: r.state,
            phase: r.phase,
            bytesSent: r.bytes.sent,
            bytesTotal: r.bytes.total,
            round: r.rounds,
            freezeMs: r.freeze.agentMs,
          });
        },
        DEFAULT_TIMEOUTS,
        this.o.policy,
        this.o.cluster,
      );
      return runner.run().catch(async (err: unknown) => {
        if (!(err instanceof LockLostError)) throw err;
        // Paused (or cut off from Redis) past the lock's TTL: another replica may drive the
        // migration now, and nothing more is ours to write. The job steps back without an attempt
        // counted: if BullMQ gave it to that replica, moving it fails (its lock is theirs) and this
        // run just ends; if not (the lock key itself was lost), it is picked up again shortly.
        log.warn({ err: err.message }, 'lost the workload lock mid-migration: stepping back');
        await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token).catch(() => undefined);
        throw new DelayedError();
      });
    });
    if (!held) {
      await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
      throw new DelayedError();
    }
    if (TERMINAL_MIGRATION_STATES.has(held.value.state)) this.o.onFinished?.(held.value);
    return held.value;
  }
}
