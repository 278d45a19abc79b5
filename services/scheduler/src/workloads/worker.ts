import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { QUEUES, WorkloadJobData, WorkloadJobName, queuePrefix, type WorkloadJobProgress, type WorkloadRecord } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { withLock, type ClusterStore } from '@ferry/store';
import { AgentCallError, type AgentClient } from './agent-client.ts';
import type { WorkloadRecords } from './lifecycle.ts';
import type { Placements } from './placements.ts';
import { hostAway } from './discards.ts';
import { HostSlots } from './host-slots.ts';

const BUSY_RETRY_MS = 500;
/** a dump or restore of a large container takes a while: at least this long for an agent's answer */
const SUSPEND_TIMEOUT_MS = 300_000;

export interface WorkloadWorkerOptions {
  keyPrefix: string;
  concurrency: number;
  /** BullMQ lock duration and stalled check, and the workload lock's TTL */
  lockMs: number;
  /** where new workloads go (batched, under the placement lock) */
  placements: Placements;
  agentTimeoutMs: number;
  /** container commands in flight to one host at most (the others wait their turn) */
  commandsPerHost: number;
  store: ClusterStore;
  records: WorkloadRecords;
  agents: AgentClient;
  /** a connection for BullMQ's blocking commands (maxRetriesPerRequest: null) */
  connection: Redis;
  log: Logger;
}

export type WorkloadJobResult = { workloadId: string; phase: WorkloadRecord['phase'] | 'destroyed'; hostId: string | null };

/**
 * Runs create / start / stop / destroy jobs from the workloads queue against the agents. One job
 * per workload at a time (a Redis lock; a job that finds it taken waits without using an attempt);
 * agent calls are idempotent, so a retried or resumed job simply runs again.
 */
export class WorkloadWorker {
  private worker: Worker | undefined;
  private readonly slots: HostSlots;

  constructor(private readonly o: WorkloadWorkerOptions) {
    this.slots = new HostSlots(o.commandsPerHost);
  }

  /** One container command to `hostId`, within the host's share of commands in flight. */
  private command<T>(hostId: string, call: () => Promise<T>): Promise<T> {
    return this.slots.run(hostId, call);
  }

  start(): void {
    this.worker = new Worker(QUEUES.workloads, (job, token) => this.process(job, token), {
      connection: this.o.connection,
      prefix: queuePrefix(this.o.keyPrefix),
      concurrency: this.o.concurrency,
      lockDuration: this.o.lockMs,
      stalledInterval: this.o.lockMs,
    });
    this.worker.on('failed', (job, err) => {
      this.o.log.warn({ jobId: job?.id, job: job?.name, attemptsMade: job?.attemptsMade, err: err.message }, 'workload job failed');
    });
    this.worker.on('error', (err) => this.o.log.error({ err }, 'workload worker error'));
  }

  /** Waits a little for running jobs; those still running then are left to BullMQ's stalled-job recovery. */
  async stop(graceMs = 3_000): Promise<void> {
    if (!this.worker) return;
    const closed = this.worker.close();
    const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), graceMs).unref());
    if ((await Promise.race([closed, timer])) === 'timeout') {
      this.o.log.warn('jobs still running at shutdown; leaving them to stalled-job recovery');
      await this.worker.close(true);
    }
  }

  private async process(job: Job, token?: string): Promise<WorkloadJobResult> {
    const name = WorkloadJobName.safeParse(job.name);
    const data = WorkloadJobData.safeParse(job.data);
    if (!name.success || !data.success) {
      this.o.log.error({ jobId: job.id, name: job.name }, 'malformed workload job; refused');
      throw new UnrecoverableError(`malformed job: ${!name.success ? `unknown job ${job.name}` : data.error?.message}`);
    }
    const { workloadId } = data.data;
    const log = this.o.log.child({ jobId: job.id, job: name.data, workload: workloadId });
    const held = await withLock(this.o.store.redis, this.o.store.keys.workloadLock(workloadId), job.id ?? 'job', this.o.lockMs, () => this.run(name.data, data.data, job, log));
    if (!held) {
      await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
      throw new DelayedError();
    }
    return held.value;
  }

  private async run(name: WorkloadJobName, data: WorkloadJobData, job: Job, log: Logger): Promise<WorkloadJobResult> {
    const { records, agents } = this.o;
    const jobId = job.id ?? null;
    let record = await records.get(data.workloadId);
    if (!record) {
      if (name === 'destroy') return { workloadId: data.workloadId, phase: 'destroyed', hostId: null };
      throw new UnrecoverableError(`workload ${data.workloadId} does not exist`);
    }
    const progress = (r: WorkloadRecord, message?: string) => job.updateProgress({ phase: r.phase, hostId: r.hostId, ...(message ? { message } : {}) } satisfies WorkloadJobProgress);
    const lastJob = { id: job.id ?? '', name };
    const isLastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);

    const step = async <T>(what: string, call: () => Promise<T>): Promise<T> => {
      try {
        return await call();
      } catch (err) {
        const retryable = err instanceof AgentCallError ? err.retryable : !(err instanceof UnrecoverableError);
        const error = err instanceof AgentCallError ? { code: err.code, message: err.message, details: err.details } : { code: 'INTERNAL', message: (err as Error).message };
        log.warn({ step: what, error, retryable, attempt: job.attemptsMade + 1 }, 'workload step failed');
        if (retryable && !isLastAttempt) throw err;
        record = await records.update(record!, { phase: 'failed', error }, jobId, `${what} failed: ${error.message}`);
        throw new UnrecoverableError(`${what} failed: ${error.message}`);
      }
    };

    switch (name) {
      case 'create': {
        if (!record.hostId) record = await this.o.placements.place(record, jobId, log);
        const hostId = record.hostId!;
        record = await records.update(record, { phase: 'creating', error: null, lastJob }, jobId);
        await progress(record);
        await step('create', () => this.command(hostId, () => agents.call(hostId, 'container.create', { spec: record!.spec, epoch: record!.epoch }, this.o.agentTimeoutMs)));
        if (record.desired === 'running') return this.startOn(record, hostId, jobId, step, progress);
        record = await records.update(record, { phase: 'stopped' }, jobId);
        return { workloadId: data.workloadId, phase: record.phase, hostId };
      }
      case 'start': {
        const hostId = this.requireHost(record);
        // every start after the first is a new generation: a copy of an older one anywhere is stale
        const epoch = record.phase === 'running' ? record.epoch : record.epoch + 1;
        record = await records.update(record, { desired: 'running', epoch, lastJob, error: null }, jobId);
        return this.startOn(record, hostId, jobId, step, progress);
      }
      case 'stop': {
        const hostId = this.requireHost(record);
        record = await records.update(record, { phase: 'stopping', desired: 'stopped', lastJob, error: null }, jobId);
        await progress(record);
        const status = await step('stop', () => this.command(hostId, () => agents.call(hostId, 'container.stop', { id: data.workloadId, graceMs: data.graceMs ?? 10_000 }, this.o.agentTimeoutMs)));
        record = await records.update(record, { phase: 'stopped', lastExit: status.exit ?? record.lastExit }, jobId);
        await progress(record);
        return { workloadId: data.workloadId, phase: record.phase, hostId };
      }
      case 'suspend':
        return this.suspend(record, data, job, log);
      case 'resume':
        return this.resume(record, data, job, log);
      case 'destroy': {
        record = await records.update(record, { phase: 'destroying', lastJob }, jobId);
        await progress(record);
        const image = record.suspended;
        if (!record.hostId && image) {
          // suspended: no host runs it, but a pool holds its root filesystem and checkpoint
          const away = await hostAway(this.o.store, image.hostId);
          if (away) log.warn({ hostId: image.hostId, away, imagesDir: image.imagesDir }, 'the host of a suspended workload is away: its checkpoint and root filesystem stay in its pool');
          else await step('destroy', () => this.command(image.hostId, () => agents.call(image.hostId, 'container.destroy', { id: data.workloadId }, this.o.agentTimeoutMs)));
        }
        if (record.hostId) {
          const hostId = record.hostId;
          const away = await hostAway(this.o.store, hostId);
          if (away) {
            // A dead or removed host must not hold the delete up: the record goes now, the host's
            // copy when it reports again (CopyDiscards).
            log.warn({ hostId, away }, 'host is away: workload record dropped, its copy discarded if the host ever reports it');
            await this.o.store.copyDiscards.put(`${hostId}/${data.workloadId}`, { hostId, workloadId: data.workloadId, at: Date.now(), reason: `deleted while its host was ${away}` });
          } else {
            await step('destroy', () => this.command(hostId, () => agents.call(hostId, 'container.destroy', { id: data.workloadId }, this.o.agentTimeoutMs)));
          }
        }
        await records.remove(record, jobId);
        return { workloadId: data.workloadId, phase: 'destroyed', hostId: record.hostId };
      }
    }
  }

  /**
   * Checkpoints a running workload to its pool and stops it (the agent's container.suspend); the
   * record then holds no host, only where the checkpoint is. Refused, with nothing changed, unless
   * it runs. A failed dump leaves it running where it was (the agent reverts), recorded so.
   */
  private async suspend(record: WorkloadRecord, data: WorkloadJobData, job: Job, log: Logger): Promise<WorkloadJobResult> {
    const { records, agents } = this.o;
    const jobId = job.id ?? null;
    const id = data.workloadId;
    // suspended by an earlier attempt of this job whose end was not recorded
    if (record.phase === 'suspended' && record.lastJob?.id === job.id) return { workloadId: id, phase: record.phase, hostId: null };
    if (record.phase !== 'running' && !(record.phase === 'suspending' && record.lastJob?.id === job.id)) {
      throw new UnrecoverableError(`${id} is ${record.phase}: only a running workload can be suspended`);
    }
    const hostId = this.requireHost(record);
    let current = await records.update(record, { phase: 'suspending', desired: 'suspended', lastJob: { id: job.id ?? '', name: 'suspend' }, error: null }, jobId);
    await job.updateProgress({ phase: current.phase, hostId } satisfies WorkloadJobProgress);
    let image;
    try {
      image = await this.command(hostId, () => agents.call(hostId, 'container.suspend', { id, epoch: current.epoch }, Math.max(this.o.agentTimeoutMs, SUSPEND_TIMEOUT_MS)));
    } catch (err) {
      const retryable = err instanceof AgentCallError ? err.retryable : false;
      const error = err instanceof AgentCallError ? { code: err.code, message: err.message, details: err.details } : { code: 'INTERNAL', message: (err as Error).message };
      log.warn({ error, retryable, attempt: job.attemptsMade + 1 }, 'suspend failed');
      if (retryable && job.attemptsMade + 1 < (job.opts.attempts ?? 1)) throw err;
      // the agent reverted a failed dump: the container runs on where it was
      current = await records.update(current, { phase: 'running', desired: 'running', error }, jobId, `suspend failed: ${error.message}`);
      throw new UnrecoverableError(`suspend failed: ${error.message}`);
    }
    current = await records.update(
      current,
      { phase: 'suspended', hostId: null, suspended: image, lastExit: { reason: 'stopped', at: image.at } },
      jobId,
      `suspended to pool ${image.pool} (${image.bytes} bytes of images)`,
    );
    await job.updateProgress({ phase: current.phase, hostId: null } satisfies WorkloadJobProgress);
    return { workloadId: id, phase: current.phase, hostId: null };
  }

  /**
   * Restores a suspended workload from its checkpoint on the host placement picks (Placements.resume)
   * or the one asked for; it runs there with its memory, one epoch on, and the checkpoint is gone.
   * Refused, with nothing changed, unless it is suspended. A failed restore leaves it suspended.
   */
  private async resume(record: WorkloadRecord, data: WorkloadJobData, job: Job, log: Logger): Promise<WorkloadJobResult> {
    const { records, agents } = this.o;
    const jobId = job.id ?? null;
    const id = data.workloadId;
    const ours = record.lastJob?.id === job.id;
    if (record.phase === 'running' && ours) return { workloadId: id, phase: record.phase, hostId: record.hostId };
    if (record.phase !== 'suspended' && !(record.phase === 'resuming' && ours)) throw new UnrecoverableError(`${id} is ${record.phase}: only a suspended workload can be resumed`);
    const image = record.suspended;
    if (!image) throw new UnrecoverableError(`${id} is ${record.phase} but its record names no checkpoint`);
    let current = record.phase === 'resuming' ? record : await this.o.placements.resume(record, data.host, jobId, { id: job.id ?? '', name: 'resume' }, log);
    const hostId = current.hostId!;
    await job.updateProgress({ phase: current.phase, hostId } satisfies WorkloadJobProgress);
    try {
      await this.command(hostId, () =>
        agents.call(hostId, 'container.resume', { spec: current.spec, epoch: current.epoch, suspendedOn: image.hostId }, Math.max(this.o.agentTimeoutMs, SUSPEND_TIMEOUT_MS)),
      );
    } catch (err) {
      const retryable = err instanceof AgentCallError ? err.retryable : false;
      const error = err instanceof AgentCallError ? { code: err.code, message: err.message, details: err.details } : { code: 'INTERNAL', message: (err as Error).message };
      log.warn({ error, retryable, attempt: job.attemptsMade + 1, hostId }, 'resume failed');
      if (retryable && job.attemptsMade + 1 < (job.opts.attempts ?? 1)) throw err;
      // the agent reverted a failed restore: the checkpoint stays, for another resume
      current = await records.update(current, { phase: 'suspended', hostId: null, error }, jobId, `resume failed: ${error.message}`);
      throw new UnrecoverableError(`resume failed: ${error.message}`);
    }
    const host = await this.o.store.hosts.get(hostId);
    current = await records.update(
      current,
      { phase: 'running', desired: 'running', suspended: null, lastExit: null, cpu: host?.capacity.cpu ?? current.cpu },
      jobId,
      `resumed from the checkpoint ${image.hostId} wrote`,
    );
    await job.updateProgress({ phase: current.phase, hostId } satisfies WorkloadJobProgress);
    return { workloadId: id, phase: current.phase, hostId };
  }

  private requireHost(record: WorkloadRecord): string {
    if (!record.hostId) throw new UnrecoverableError(`workload ${record.spec.id} has no host yet`);
    return record.hostId;
  }

  private async startOn(
    record: WorkloadRecord,
    hostId: string,
    jobId: string | null,
    step: <T>(what: string, call: () => Promise<T>) => Promise<T>,
    progress: (r: WorkloadRecord) => Promise<void>,
  ): Promise<WorkloadJobResult> {
    const { records, agents } = this.o;
    let current = await records.update(record, { phase: 'starting' }, jobId);
    await progress(current);
    await step('start', () => this.command(hostId, () => agents.call(hostId, 'container.start', { id: record.spec.id, epoch: record.epoch }, this.o.agentTimeoutMs)));
    const host = await this.o.store.hosts.get(hostId);
    current = await records.update(current, { phase: 'running', lastExit: null, cpu: host?.capacity.cpu ?? current.cpu }, jobId);
    await progress(current);
    return { workloadId: record.spec.id, phase: current.phase, hostId };
  }
}
