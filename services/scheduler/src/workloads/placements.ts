import { UnrecoverableError } from 'bullmq';
import { Placer, resumeTarget, type PlacementPolicy, type PlacementResult } from '@ferry/core';
import type { JobRef, WorkloadRecord } from '@ferry/protocol';
import { Batcher, type Logger } from '@ferry/runtime';
import { RedisLock, type ClusterCopy, type ClusterStore } from '@ferry/store';
import type { WorkloadRecords } from './lifecycle.ts';

const PLACEMENT_LOCK_TTL_MS = 30_000;
/** at most this many placements per model of the cluster */
const MAX_BATCH = 256;

interface Waiting {
  record: WorkloadRecord;
  jobId: string | null;
  log: Logger;
}

export interface PlacementsOptions {
  store: ClusterStore;
  records: WorkloadRecords;
  policy: PlacementPolicy;
  /** the cluster as this replica sees it: its live host table and a change-log copy of every workload */
  cluster: ClusterCopy;
}

/**
 * Where new workloads go, decided in batches under the cluster-wide placement lock, so concurrent
 * creates never count the same free room twice (within a batch the Placer sees each placement;
 * across batches and replicas the lock and the records written before it is released do).
 *
 * A batch is every placement waiting when the lock is taken. Its model of the cluster is built
 * once, from the hosts this replica's intake holds and a copy of every workload that follows the
 * workloads hash's change log (a ClusterCopy) —
 * not from a snapshot of the whole cluster per placement, which made placement O(cluster) per
 * workload: 2–3 placements/s at 5,000 hosts (bench/RESULTS.md, "Scale, first form").
 */
export class Placements {
  private readonly batches = new Batcher<Waiting, WorkloadRecord>((batch) => this.decide(batch), MAX_BATCH);
  /** batches decided, and placements in them (the benchmark reads them) */
  readonly stats = { batches: 0, placed: 0 };

  constructor(private readonly o: PlacementsOptions) {}

  /** Places `record` (it has no host yet): the record with its host, or an UnrecoverableError when no host can take it. */
  place(record: WorkloadRecord, jobId: string | null, log: Logger): Promise<WorkloadRecord> {
    return this.batches.submit({ record, jobId, log });
  }

  /**
   * Where a suspended workload resumes (resumeTarget: its own host, or on a shared pool any
   * compatible host that mounts it; `requested` when the operator named one), decided and written
   * under the placement lock like any placement, so a create placed meanwhile never counts the
   * same room. The record moves to `resuming` on that host, one epoch on (the copy it restores is
   * a new generation). An UnrecoverableError, with the record unchanged, when no host can.
   */
  async resume(record: WorkloadRecord, requested: string | undefined, jobId: string | null, lastJob: JobRef, log: Logger): Promise<WorkloadRecord> {
    const lock = await this.lock();
    try {
      const target = resumeTarget(record, await this.o.cluster.snapshot(), this.o.policy, requested);
      if (!target.ok) {
        log.warn({ code: target.code, refusals: target.refusals }, target.message);
        throw new UnrecoverableError(target.message);
      }
      log.info({ hostId: target.hostId, reason: target.reason }, 'resume placed');
      return await this.o.records.update(
        record,
        { phase: 'resuming', hostId: target.hostId, epoch: record.epoch + 1, placement: { hostId: target.hostId, reason: target.reason, refused: {} }, lastJob, error: null },
        jobId,
        target.reason,
      );
    } finally {
      await lock.release();
    }
  }

  private async decide(batch: Waiting[]): Promise<Array<Promise<WorkloadRecord>>> {
    const lock = await this.lock();
    try {
      const placer = new Placer(
        await this.o.cluster.snapshot(),
        this.o.policy,
        batch.map((w) => w.record.spec),
      );
      const results = batch.map((_, k) => placer.place(k));
      this.stats.batches++;
      this.stats.placed += results.filter((r) => r.ok).length;
      const outcomes = batch.map((w, k) => this.record(w, results[k]!));
      // every record lands before the lock is released: the next batch (any replica) reads them
      await Promise.allSettled(outcomes);
      return outcomes;
    } finally {
      await lock.release();
    }
  }

  private async record(w: Waiting, result: PlacementResult): Promise<WorkloadRecord> {
    const { records } = this.o;
    if (!result.ok) {
      const summary = Object.entries(result.refused)
        .map(([code, n]) => `${n}× ${code}`)
        .join(', ');
      const admission = result.refusals.find((r) => r.code === 'HA_ADMISSION');
      const message = `no host can take ${w.record.spec.id}: ${summary || 'there are no hosts'}${admission ? ` (HA admission control: ${admission.message})` : ''}`;
      w.log.warn({ refusals: result.refusals }, message);
      const code = admission ? 'HA_ADMISSION' : 'NO_HOST';
      await records.update(w.record, { phase: 'failed', error: { code, message, details: { refusals: result.refusals } } }, w.jobId, message);
      throw new UnrecoverableError(message);
    }
    w.log.info({ hostId: result.decision.hostId, reason: result.decision.reason }, 'placed');
    return records.update(w.record, { hostId: result.decision.hostId, placement: result.decision }, w.jobId, result.decision.reason);
  }

  private async lock(): Promise<RedisLock> {
    const { store } = this.o;
    for (let waited = 0; ; waited += 100) {
      const lock = await RedisLock.acquire(store.redis, store.keys.placementLock, PLACEMENT_LOCK_TTL_MS);
      if (lock) return lock;
      if (waited > PLACEMENT_LOCK_TTL_MS) throw new Error('placement lock stayed busy');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
