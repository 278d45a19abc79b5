import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { restartTarget, restartTargets, type PlacementPolicy, type RestartDecision } from '@ferry/core';
import { FailoverJobData, QUEUES, queuePrefix, type FailoverRecord, type FailoverRestart, type WorkloadRecord } from '@ferry/protocol';
import { createLimiter, type Logger } from '@ferry/runtime';
import { LockLostError, withLock, type ClusterStore, type WorkloadWrites } from '@ferry/store';
import type { AgentClient } from '../workloads/agent-client.ts';

/**
 * How long a restart waits for the new host's `container.adopt` (a record, then a normal start:
 * well under a second here). Adopting is idempotent, so a request lost with NATS or with the
 * agent is simply asked again by the job's next attempt: a long timeout only makes the workload
 * wait for nothing (it was 120 s: the failover fault matrix measured a 120 s outage when the
 * destination's agent died during the adopt, and 120 s of a stale record when NATS did).
 */
const ADOPT_TIMEOUT_MS = 20_000;

/** A failover record written only while KEYS[1] (the BullMQ job's lock) still holds ARGV[1] (this attempt's job token). */
const PUT_UNDER_JOB_LOCK = `
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
return 1`;

/**
 * Restarts a dead host's HA workloads, highest priority first, each on a host that passes the
 * migration checks and shares its pool, at epoch + 1 (the dead host's copy, should it come back,
 * is older and gets discarded). Every restart is idempotent and recorded, so a scheduler that dies
 * mid-way is replaced by one that finishes (BullMQ's stalled-job recovery re-runs the job).
 */
export class FailoverWorker {
  private worker: Worker | undefined;
  /** restarts in flight at once, over every failover this scheduler runs */
  private readonly slots: <T>(task: () => Promise<T>) => Promise<T>;

  constructor(
    private readonly store: ClusterStore,
    private readonly agents: AgentClient,
    private readonly keyPrefix: string,
    private readonly connection: Redis,
    private readonly lockMs: number,
    private readonly policy: PlacementPolicy,
    private readonly log: Logger,
    concurrency: number,
    /** told of every change of a failover record (events) and of every failover that ended (metrics) */
    private readonly hooks: { onUpdate?: (record: FailoverRecord) => void; onFinished?: (record: FailoverRecord) => void; storageStaleMs?: number } = {},
  ) {
    this.slots = createLimiter(concurrency);
  }

  start(): void {
    this.worker = new Worker(QUEUES.failovers, (job) => this.process(job), {
      connection: this.connection,
      prefix: queuePrefix(this.keyPrefix),
      lockDuration: this.lockMs,
      stalledInterval: this.lockMs,
    });
    this.worker.on('error', (err) => this.log.error({ err }, 'failover worker error'));
  }

  async stop(): Promise<void> {
    await this.worker?.close(true);
  }

  private async process(job: Job): Promise<FailoverRecord> {
    const data = FailoverJobData.safeParse(job.data);
    if (job.name !== 'failover' || !data.success) throw new UnrecoverableError(`malformed failover job ${job.name}`);
    let record = await this.store.failovers.get(data.data.failoverId);
    if (!record) throw new UnrecoverableError(`no failover ${data.data.failoverId}`);
    if (record.state !== 'running') return record;
    const log = this.log.child({ failoverId: record.id, hostId: record.hostId });
    log.info({ attempt: job.attemptsMade + 1, restarts: record.restarts.map((r) => `${r.workload}:${r.status}`) }, 'failover picked up');
    // Saves go out one after another, each with the record as it is then (restarts run concurrently),
    // and only while this attempt holds the job: an attempt that stalled past the job's lock while
    // another replica took the failover over would write back its stale view of the whole record
    // (a completed failover made `running` again, with nobody left to finish it).
    let lost = false;
    const jobLock = `${queuePrefix(this.keyPrefix)}:${QUEUES.failovers}:${job.id}:lock`;
    let saving: Promise<unknown> = Promise.resolve();
    const save = (patch: Partial<FailoverRecord>): Promise<unknown> => {
      record = { ...record!, ...patch };
      const snapshot = record;
      saving = saving.then(async () => {
        if (lost) return;
        if (job.token) {
          const landed = await this.store.redis.eval(PUT_UNDER_JOB_LOCK, 2, jobLock, this.store.keys.failovers, job.token, snapshot.id, JSON.stringify(snapshot));
          if (landed !== 1) {
            lost = true;
            return;
          }
        } else await this.store.failovers.put(snapshot.id, snapshot);
        this.hooks.onUpdate?.(snapshot);
      });
      return saving;
    };
    const setEntry = (i: number, entry: FailoverRestart, unrecoverable?: { workload: string; reason: string }) =>
      save({
        restarts: record!.restarts.map((r, k) => (k === i ? entry : r)),
        ...(unrecoverable ? { unrecoverable: [...record!.unrecoverable.filter((u) => u.workload !== unrecoverable.workload), unrecoverable] } : {}),
      });
    const host = await this.store.hosts.get(record.hostId);
    if (host && host.state !== 'down') {
      await save({ state: 'abandoned', finishedAt: Date.now(), note: `${record.hostId} came back (${host.state}) before its workloads were restarted` });
      await saving;
      this.hooks.onFinished?.(record);
      return record;
    }
    // Placement decisions are taken in priority order, each seeing the ones before it (so the
    // highest priorities get the room): all at once on one model of the cluster first; a
    // workload that changed since then is decided again, one at a time, when its turn comes. The
    // restarts themselves then run side by side, at most `concurrency` at once.
    const planned = await this.planRestarts(record);
    let failures = 0;
    let previousDecided: Promise<void> = Promise.resolve();
    const tasks: Array<Promise<void>> = [];
    for (let i = 0; i < record.restarts.length; i++) {
      const entry = record.restarts[i]!;
      if (entry.status === 'restarted' || entry.status === 'unplaceable') continue;
      const myTurn = previousDecided;
      let decided!: () => void;
      previousDecided = new Promise<void>((resolve) => (decided = resolve));
      tasks.push(
        (async () => {
          try {
            await myTurn;
            // Every write of the restart is fenced by this acquisition of the workload's lock: an
            // attempt that stalled past the lock's TTL (a stopped or starved scheduler) while another
            // replica took the restart over writes nothing more — neither the workload's owner nor
            // the failover record — and leaves it to that replica.
            const held = await withLock(this.store.redis, this.store.keys.workloadLock(entry.workload), record!.id, this.lockMs, async (lock) => {
              const writes = this.store.writesUnder(lock.fence);
              const outcome = await this.restart(record!, entry, planned, (intent) => writes.check().then(() => setEntry(i, intent)), decided, log, writes);
              await writes.check();
              await setEntry(i, outcome.entry, outcome.unrecoverable);
              return outcome;
            });
            if (!held) {
              failures++; // someone else holds it: try again on the next attempt
              return;
            }
            // failed, or waiting for the storage channel's proof: the job tries again
            if (held.value.entry.status === 'failed' || held.value.entry.status === 'pending') failures++;
          } catch (err) {
            failures++;
            if (err instanceof LockLostError) lost = true;
            log.error({ workload: entry.workload, err: (err as Error).message }, 'restart step failed');
          } finally {
            decided();
          }
        })(),
      );
    }
    await Promise.all(tasks);
    await saving;
    if (lost) {
      // stopped or starved past its locks: another replica has taken over (or will), and this
      // attempt's view of the record is stale — it writes nothing more
      log.warn('failover attempt lost its locks: leaving the failover to the replica that took it over');
      throw new Error('lost a workload lock during the failover: another replica finishes it');
    }
    if (failures > 0) throw new Error(`${failures} restart(s) not done yet`); // retried by BullMQ
    await save({ state: 'completed', finishedAt: Date.now() });
    await saving;
    if (lost) {
      log.warn('failover attempt lost its job lock: leaving the failover to the replica that took it over');
      throw new Error('lost the job lock: another replica finishes the failover');
    }
    this.hooks.onFinished?.(record);
    log.info({ restarted: record.restarts.filter((r) => r.status === 'restarted').length, unrecoverable: record.unrecoverable.length }, 'failover finished');
    return record;
  }

  /**
   * The storage channel's word before a restart (docs/failover.md): the host that is to restart
   * the workload shares its pool with the dead host; it writes the declaration of failure there
   * and confirms only when the dead host fenced or its heartbeat there stopped long enough that it
   * has fenced by itself. A host alive on storage is isolated, not failed: its workload waits.
   */
  private async confirmFailed(on: string, deadHost: string, pool: string, log: Logger): Promise<{ ok: true } | { ok: false; reason: string }> {
    const staleAfterMs = this.hooks.storageStaleMs ?? 6_000;
    try {
      const answer = await this.agents.call(on, 'storage.confirm-failed', { hostId: deadHost, pool, staleAfterMs }, 15_000);
      if (answer.confirmed) return { ok: true };
      const reason =
        answer.reason === 'alive'
          ? `waiting: ${deadHost} is alive on storage (its heartbeat in ${pool} changed ${answer.unchangedForMs} ms ago, as ${on} sees it): isolated, not failed`
          : `waiting: ${on} cannot vouch for ${deadHost} on ${pool} (${answer.reason})`;
      log.warn({ on, deadHost, pool, answer }, 'restart held back: no proof of death from storage');
      return { ok: false, reason };
    } catch (err) {
      return { ok: false, reason: `waiting: ${on} could not check ${deadHost}'s storage heartbeat: ${(err as Error).message}` };
    }
  }

  /**
   * Where each restart still to decide goes, decided together (restartTargets), keyed by workload
   * with the epoch it was decided at: a workload whose record moved on since is decided again.
   */
  private async planRestarts(record: FailoverRecord): Promise<Map<string, { epoch: number; decision: RestartDecision }>> {
    const planned = new Map<string, { epoch: number; decision: RestartDecision }>();
    const open = record.restarts.filter((r) => r.status !== 'restarted' && r.status !== 'unplaceable' && r.to === null);
    if (open.length === 0) return planned;
    const current = await this.store.workloads.getMany(open.map((r) => r.workload));
    const onDeadHost = current.filter((w): w is WorkloadRecord => w !== null && w.hostId === record.hostId);
    if (onDeadHost.length === 0) return planned;
    const decisions = restartTargets(onDeadHost, record.hostId, await this.store.snapshot(), this.policy);
    onDeadHost.forEach((w, i) => planned.set(w.spec.id, { epoch: w.epoch, decision: decisions[i]! }));
    return planned;
  }

  private async restart(
    record: FailoverRecord,
    entry: FailoverRestart,
    planned: ReadonlyMap<string, { epoch: number; decision: RestartDecision }>,
    intend: (intent: FailoverRestart) => Promise<unknown>,
    decided: () => void,
    log: Logger,
    writes: WorkloadWrites,
  ): Promise<{ entry: FailoverRestart; unrecoverable?: { workload: string; reason: string } }> {
    const workload = await this.store.workloads.get(entry.workload);
    if (!workload) return { entry: { ...entry, status: 'unplaceable', reason: 'the workload no longer exists', at: Date.now() } };
    // Already given to its new host by this failover (an attempt that died got this far): make sure it runs there.
    const resumed = entry.to !== null && workload.hostId === entry.to && workload.epoch === entry.epoch;
    let to = resumed ? entry.to : null;
    let epoch = workload.epoch;
    if (!to) {
      if (workload.hostId !== record.hostId) return { entry: { ...entry, status: 'restarted', to: workload.hostId, epoch: workload.epoch, reason: 'already elsewhere', at: Date.now() } };
      const early = planned.get(workload.spec.id);
      const decision = early && early.epoch === workload.epoch ? early.decision : restartTarget(workload, record.hostId, await this.store.snapshot(), this.policy);
      // decided with the others on one model: the next one's decision does not wait for this one's records
      if (early && early.decision === decision) decided();
      if (!decision.ok) {
        log.warn({ workload: entry.workload, reason: decision.reason }, decision.unrecoverable ? 'HA workload cannot be recovered' : 'HA workload cannot be placed now');
        await this.store.addHistory(record.hostId, { at: Date.now(), kind: decision.unrecoverable ? 'unrecoverable' : 'restart', message: `${entry.workload}: ${decision.reason}` });
        return {
          entry: { ...entry, status: 'unplaceable', reason: decision.reason, at: Date.now() },
          ...(decision.unrecoverable ? { unrecoverable: { workload: entry.workload, reason: decision.reason } } : {}),
        };
      }
      to = decision.to;
      const proof = await this.confirmFailed(to, record.hostId, workload.spec.pool, log);
      if (!proof.ok) return { entry: { ...entry, status: 'pending', reason: proof.reason, at: Date.now() } };
      epoch = workload.epoch + 1;
      // the intent is recorded before the ownership changes, so whoever resumes this knows the move was its own
      await intend({ ...entry, to, epoch, status: 'pending', reason: `restarting on ${to}` });
      // Ownership first, at the new epoch: from here the dead host's copy is stale whatever happens.
      // (fenced: what this attempt read and decided is stale if it stalled past its lock)
      await writes.putWorkload({ ...workload, hostId: to, epoch, phase: 'starting', migratingTo: null, updatedAt: Date.now() });
    }
    decided(); // the next placement decision may go: this one is in the store
    try {
      await this.slots(() => this.agents.call(to, 'container.adopt', { spec: workload.spec, epoch, fromHost: record.hostId }, ADOPT_TIMEOUT_MS));
    } catch (err) {
      log.error({ workload: entry.workload, to, err: (err as Error).message }, 'restart failed');
      return { entry: { ...entry, to, epoch, status: 'failed', reason: (err as Error).message, at: Date.now() } };
    }
    // the new holder (if this attempt stalled past its lock) records the restart, once
    await writes.check();
    const now = Date.now();
    const current = await this.store.workloads.get(workload.spec.id);
    if (current) await writes.putWorkload({ ...current, phase: 'running', lastExit: null, updatedAt: now });
    log.warn({ workload: entry.workload, to, epoch }, 'HA workload restarted on another host');
    await this.store.addHistory(record.hostId, { at: now, kind: 'restart', message: `${entry.workload} restarted on ${to} at epoch ${epoch}` });
    await this.store.addHistory(to, { at: now, kind: 'restart', message: `${entry.workload} restarted here (from ${record.hostId}) at epoch ${epoch}` });
    return { entry: { ...entry, to, epoch, status: 'restarted', reason: `restarted on ${to}`, at: now } };
  }
}
