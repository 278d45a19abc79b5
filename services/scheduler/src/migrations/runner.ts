import { randomBytes } from 'node:crypto';
import type { NatsConnection } from 'nats';
import {
  CLEANUP_STEPS,
  DEFAULT_MIGRATION_TIMEOUTS,
  DEFAULT_PLACEMENT_POLICY,
  UNDO_STEPS,
  chooseStrategy,
  decideResume,
  hostProblems,
  rollbackSteps,
  sharedPoolProven,
  strategyDefinition,
  type ClusterSnapshot,
  type MigrationStrategyDefinition,
  type MigrationTimeouts,
  type PhaseDefinition,
  type PipelineCommand,
  type PlacementPolicy,
  type SchedulerStep,
  type SkipRule,
  type UndoStep,
} from '@ferry/core';
import {
  FinishMigrationResult,
  subjects,
  type MigrationEvent,
  type MigrationPhase,
  type AgentCommand,
  type AgentRequest,
  type AgentResult,
  type DeferredMigrationStep,
  type MigrationRecord,
  type WorkloadRecord,
} from '@ferry/protocol';
import { encodeJson, type Logger } from '@ferry/runtime';
import { LockLostError, type ClusterStore, type WorkloadWrites } from '@ferry/store';
import { AgentCallError, type AgentClient } from '../workloads/agent-client.ts';
import { AGENT_STEPS, MigrationFailure, type AgentStep, type PhaseOutcome, type StepContext } from './agent-steps.ts';

export { MigrationFailure } from './agent-steps.ts';

export class CancelledError extends MigrationFailure {
  constructor() {
    super('CANCELLED', 'cancelled through DELETE /v1/migrations/:id');
  }
}

/**
 * The cluster a migration's checks read: every decision that a completed write could change must
 * see it (the scheduler's ClusterCopy reflects every write completed before the call).
 */
export interface ClusterSource {
  snapshot(fresh?: readonly string[]): Promise<ClusterSnapshot>;
}

/** How long each agent step may take: declared with the pipeline in @ferry/core. */
export type { MigrationTimeouts } from '@ferry/core';
export const DEFAULT_TIMEOUTS: MigrationTimeouts = DEFAULT_MIGRATION_TIMEOUTS;

/** Pause before the next try of a failed cleanup step: 1 s, 2 s, 4 s … at most 15 s. */
export const cleanupBackoffMs = (attempt: number): number => Math.min(15_000, 1_000 * 2 ** Math.min(attempt, 10));

const secretKey = (store: ClusterStore, id: string) => `${store.keys.migrations}:secret:${id}`;
const tlsKey = (store: ClusterStore, id: string) => `${store.keys.migrations}:tls:${id}`;
const SECRET_TTL_S = 24 * 3600;
const CANCEL_POLL_MS = 250;
/** how often the source's post-copy finish looks whether the destination died */
const PAGE_WATCH_MS = 1_000;

/** What a skip rule leaves in the phase's timeline entry when it applies. */
const SKIPPED: Record<SkipRule, { bytes: number; note: string }> = {
  'shared-rootfs': { bytes: 0, note: 'shared pool: nothing to copy' },
};

export interface ProgressSink {
  (record: MigrationRecord): Promise<void>;
}

/**
 * Drives one migration through its phases against the two agents, recording every step in
 * Redis before and after it runs, so that whoever picks the job up next (a retry, or another
 * worker after this one died) can tell from the record alone whether to go on, roll back, or
 * finish the cleanup (see decideResume in @ferry/core).
 *
 * Every write goes through `writes`, fenced by the workload's lock, and every agent request is
 * preceded by a check of it: a runner whose scheduler was paused past the lock's TTL (and whose
 * migration another replica took over) stops at its next step with a LockLostError — it neither
 * writes, nor asks an agent for anything, nor rolls back what is no longer its own.
 */
export class MigrationRunner {
  private record: MigrationRecord;
  private workload: WorkloadRecord | null = null;
  /** record writes wait for the next one (writesDeferred): set only while a frozen phase runs */
  private deferWrites = false;

  constructor(
    record: MigrationRecord,
    private readonly store: ClusterStore,
    private readonly writes: WorkloadWrites,
    private readonly agents: AgentClient,
    private readonly nc: NatsConnection,
    private readonly log: Logger,
    private readonly progress: ProgressSink,
    private readonly timeouts: MigrationTimeouts = DEFAULT_TIMEOUTS,
    private readonly policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
    /** where the checks read the cluster: the scheduler's ClusterCopy (its live host table and change-log copy of the workloads); else Redis, whole */
    private readonly cluster: ClusterSource = { snapshot: () => store.snapshot() },
  ) {
    this.record = record;
  }

  /** Runs to the end (completed or rolled back); throws only for what a retry may fix (cleanup after commit, a failed rollback step). */
  async run(): Promise<MigrationRecord> {
    const committed = await this.isCommitted();
    const decision = decideResume({ ...this.record, cancelRequested: await this.store.cancelRequested(this.record.id) }, committed);
    this.log.info({ decision, state: this.record.state, phase: this.record.phase, completed: this.record.completed }, 'migration picked up');
    switch (decision.action) {
      case 'done':
        return this.record;
      case 'cleanup':
        return this.cleanup();
      case 'rollback':
        return this.rollback(decision.reason.includes('cancel') ? new CancelledError() : new MigrationFailure('INTERRUPTED', decision.reason));
      case 'continue':
        return this.forward(decision.from);
    }
  }

  private async isCommitted(): Promise<boolean> {
    const workload = await this.store.workloads.get(this.record.workloadId);
    return workload !== null && workload.epoch >= this.record.epochTo && workload.hostId === this.record.destination;
  }

  /** The strategy's declaration (phases, undo, cleanup): MIGRATION_STRATEGY_REGISTRY in @ferry/core. */
  private get strategy(): MigrationStrategyDefinition {
    return strategyDefinition(this.record.strategy);
  }

  /** Walks the strategy's declared phases from `from`; any failure before the commit rolls back. */
  private async forward(from: MigrationPhase): Promise<MigrationRecord> {
    const phases = this.strategy.phases;
    await this.save({ state: 'running' });
    for (const phase of phases.slice(phases.findIndex((p) => p.phase === from))) {
      if (phase.phase === 'cleanup') return this.cleanup();
      if (phase.cancel !== 'never' && (await this.store.cancelRequested(this.record.id))) return this.rollback(new CancelledError());
      try {
        await this.runPhase(phase.phase, () => this.runStep(phase));
      } catch (err) {
        if (err instanceof LockLostError) throw err; // not ours to roll back any more
        if (phase.phase === 'commit' && !(err instanceof MigrationFailure)) {
          // The commit's write failed (Redis away, or its answer lost): it may have landed. If it
          // did, only the cleanup remains; if not — or if Redis cannot tell yet (this throws) —
          // the job is tried again later and commits then (decideResume): never a rollback of
          // a workload the destination verified.
          if (await this.isCommitted()) return this.cleanup();
          throw err;
        }
        const failure = err instanceof MigrationFailure ? err : err instanceof AgentCallError ? new MigrationFailure(err.code, err.message) : new MigrationFailure('INTERNAL', (err as Error).message);
        return this.rollback(failure);
      }
    }
    return this.cleanup();
  }

  /**
   * Whether the record writes of `phase` (its step's, and its end) wait for the next phase's start
   * to land with it. So for the phases that run while the workload is frozen, up to the restore:
   * every write there is freeze time (the frozen transfer waited on four writes and two job
   * progress updates after the dump), and nothing is lost by deferring them — a runner that dies
   * in that window leaves the phase interrupted at or after `frozenFrom`, which rolls back
   * (decideResume) whether or not its end was written.
   */
  private writesDeferred(phase: MigrationPhase): boolean {
    const phases = this.strategy.phases.map((p) => p.phase);
    const at = phases.indexOf(phase);
    return this.strategy.live && at >= phases.indexOf(this.strategy.frozenFrom) && at < phases.indexOf('restore');
  }

  /** Records the start, runs, records the end; publishes both as events. */
  private async runPhase(phase: MigrationPhase, work: () => Promise<{ bytes?: number; note?: string } | void>): Promise<void> {
    const startedAt = Date.now();
    await this.save({ phase, timeline: [...this.record.timeline, { phase, startedAt, endedAt: null, ms: null }] });
    this.publish(phase, 'started', null);
    this.deferWrites = this.writesDeferred(phase);
    let endedAt: number;
    try {
      const outcome = (await work()) ?? {};
      endedAt = Date.now();
      const timeline = this.record.timeline.map((entry) =>
        entry.phase === phase && entry.endedAt === null
          ? { ...entry, endedAt, ms: endedAt - startedAt, ...(outcome.bytes === undefined ? {} : { bytes: outcome.bytes }), ...(outcome.note ? { note: outcome.note } : {}) }
          : entry,
      );
      await this.save({ completed: [...new Set([...this.record.completed, phase])], timeline });
    } finally {
      // the next phase's start writes what was deferred; so does a failure's rollback
      this.deferWrites = false;
    }
    // nothing is published by a runner that lost the lock (a deferred write did not check it)
    if (this.writesDeferred(phase)) await this.writes.check();
    this.publish(phase, 'done', endedAt - startedAt);
  }

  private async loadWorkload(): Promise<WorkloadRecord> {
    const workload = await this.store.workloads.get(this.record.workloadId);
    if (!workload) throw new MigrationFailure('WORKLOAD_GONE', `workload ${this.record.workloadId} no longer exists`);
    this.workload = workload;
    return workload;
  }

  private async secret(create = false): Promise<string> {
    const key = secretKey(this.store, this.record.id);
    if (create) {
      await this.writes.check(); // a runner that lost the lock must not replace the secret of the one that took over
      const secret = randomBytes(32).toString('base64url');
      await this.store.redis.set(key, secret, 'EX', SECRET_TTL_S);
      return secret;
    }
    const secret = await this.store.redis.get(key);
    if (!secret) throw new MigrationFailure('SECRET_LOST', 'the migration secret expired');
    return secret;
  }

  private async tls(): Promise<{ certPem: string; keyPem: string }> {
    const stored = await this.store.redis.get(tlsKey(this.store, this.record.id));
    if (!stored) throw new MigrationFailure('SECRET_LOST', 'the migration certificate expired');
    return JSON.parse(stored) as { certPem: string; keyPem: string };
  }

  /** Races an agent call against a cancel request, so a long transfer can be abandoned. */
  private async cancellable<T>(call: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const cancelled = new Promise<never>((_, reject) => {
      const poll = async () => {
        if (await this.store.cancelRequested(this.record.id).catch(() => false)) reject(new CancelledError());
        else timer = setTimeout(() => void poll(), CANCEL_POLL_MS);
      };
      timer = setTimeout(() => void poll(), CANCEL_POLL_MS);
    });
    try {
      return await Promise.race([call, cancelled]);
    } finally {
      clearTimeout(timer);
      call.catch(() => undefined); // an abandoned call's late failure is expected
    }
  }

  /**
   * One declared phase: the validate checks again if it asks for them, its skip rule, then its
   * scheduler step or its agent request (one builder and result handler per command, AGENT_STEPS),
   * sent to the side the phase names with the timeout it names.
   */
  private async runStep(phase: PhaseDefinition): Promise<PhaseOutcome> {
    // Once more right before the point where undoing costs a freeze: the cluster may have moved.
    if (phase.recheck) await this.checkDestination();
    if (phase.skip && this.skips(phase.skip)) return SKIPPED[phase.skip];
    if (phase.side === 'scheduler') return this.schedulerSteps[phase.step]();
    const hostId = phase.side === 'source' ? this.record.source : this.record.destination;
    return this.agentStep(phase.command, hostId, this.timeouts[phase.timeout], phase.cancel === 'during');
  }

  private skips(rule: SkipRule): boolean {
    switch (rule) {
      case 'shared-rootfs':
        return this.requireTransfer().sharedRootfs;
    }
  }

  private async agentStep<C extends PipelineCommand>(command: C, hostId: string, timeoutMs: number, cancellable: boolean): Promise<PhaseOutcome> {
    const step = AGENT_STEPS[command] as unknown as AgentStep<C>;
    const request = await step.request(this.context);
    const call = this.call(hostId, command, request, timeoutMs);
    return step.done(this.context, await (cancellable ? this.cancellable(call) : call));
  }

  /** What the agent steps may use of this runner (its writes stay fenced by the workload lock). */
  private readonly context: StepContext = {
    record: () => this.record,
    workload: async () => this.workload ?? (await this.loadWorkload()),
    sharedRootfs: async (pool) => sharedPoolProven(await this.cluster.snapshot([this.record.source, this.record.destination]), pool, this.record.source, this.record.destination),
    sourceAddress: () => this.sourceAddress(),
    secret: (create) => this.secret(create),
    tls: () => this.tls(),
    keepTls: async (tls) => void (await this.store.redis.set(tlsKey(this.store, this.record.id), JSON.stringify(tls), 'EX', SECRET_TTL_S)),
    requireTransfer: () => this.requireTransfer(),
    save: (patch) => this.save(patch),
    addBytes: (bytes) => this.addBytes(bytes),
  };

  /** The phases the scheduler runs by itself. */
  private readonly schedulerSteps: Record<SchedulerStep, () => Promise<PhaseOutcome>> = {
    'check-destination': async () => {
      await this.checkDestination();
      return { note: `${this.record.strategy}: ${this.record.strategyReason}` };
    },
    reserve: async () => {
      const workload = await this.loadWorkload();
      await this.writes.putWorkload({ ...workload, phase: 'migrating', migratingTo: this.record.destination, updatedAt: Date.now() });
      return { note: `${workload.spec.resources.memoryMiB} MiB reserved on ${this.record.destination}` };
    },
    'precopy-rounds': async () => {
      // Declared for precopy, which the registry marks not implemented: never chosen, refused when asked.
      throw new MigrationFailure('PRECOPY_UNAVAILABLE', 'this version drives pre-copy rounds only where mem_dirty_track is present; none ran');
    },
    commit: () => this.commit(),
    cleanup: async () => undefined,
  };

  /** The workload moves to the destination and the record says committed: one fenced write. */
  private async commit(): Promise<PhaseOutcome> {
    const r = this.record;
    const workload = await this.loadWorkload();
    if (workload.hostId !== r.source || workload.epoch !== r.epochFrom) {
      throw new MigrationFailure('MOVED', `workload ${r.workloadId} is on ${workload.hostId} at epoch ${workload.epoch}, not on ${r.source} at ${r.epochFrom}: not committed`);
    }
    const destination = await this.store.hosts.get(r.destination);
    const now = Date.now();
    const moved: WorkloadRecord = {
      ...workload,
      hostId: r.destination,
      epoch: r.epochTo,
      phase: r.wasRunning ? 'running' : 'stopped',
      migratingTo: null,
      // the processes keep the CPU features they started with; the baseline does not widen
      cpu: workload.cpu ?? destination?.capacity.cpu ?? null,
      updatedAt: now,
    };
    const entry = this.record.timeline.find((e) => e.phase === 'commit' && e.endedAt === null);
    const timeline = this.record.timeline.map((e) => (e === entry ? { ...e, endedAt: now, ms: now - e.startedAt } : e));
    const committed: MigrationRecord = { ...this.record, completed: [...this.record.completed, 'commit'], timeline, updatedAt: now };
    // this.record says "committed" only once the write landed: a rollback after a failed
    // commit must not record a commit that never happened
    await this.writes.commitMigration(moved, committed);
    this.record = committed;
    this.log.info({ destination: r.destination, epoch: r.epochTo }, 'committed: the workload now belongs to the destination');
    return { note: `epoch ${r.epochFrom} → ${r.epochTo}, owner ${r.source} → ${r.destination}` };
  }

  /**
   * The checks placement and planning made, run again on the cluster as it is now: the workload
   * is where the migration thinks, at the expected epoch, and the destination still passes every
   * compatibility check (its own reservation for this workload does not count against it).
   */
  private async checkDestination(): Promise<void> {
    const r = this.record;
    const workload = await this.loadWorkload();
    // not a read of the whole cluster per move (2 per move held plans to ~9 moves/s at 200 hosts)
    const snapshot = await this.cluster.snapshot([r.source, r.destination]);
    const source = snapshot.hosts.find((h) => h.id === r.source);
    const destination = snapshot.hosts.find((h) => h.id === r.destination);
    if (workload.hostId !== r.source) throw new MigrationFailure('MOVED', `workload ${r.workloadId} is on ${workload.hostId}, not ${r.source}`);
    if (workload.epoch !== r.epochFrom) throw new MigrationFailure('EPOCH_CHANGED', `workload ${r.workloadId} is at epoch ${workload.epoch}, expected ${r.epochFrom}`);
    if (!source || !destination) throw new MigrationFailure('HOST_UNKNOWN', 'source or destination host is unknown');
    if (source.state === 'down') throw new MigrationFailure('HOST_DOWN', `source host ${r.source} is down: failover, not migration, handles its workloads`);
    const problems = hostProblems(workload.spec, destination, snapshot, this.policy, { migrating: { cpu: workload.cpu ?? source.capacity.cpu, from: source.id } });
    if (problems.length > 0) throw new MigrationFailure(problems[0]!.code, problems.map((p) => p.message).join('; '));
    const choice = chooseStrategy(source, destination, r.wasRunning, { mode: this.strategy.live ? 'live' : 'cold', strategy: r.strategy });
    if (!choice.ok) throw new MigrationFailure(choice.problem.code, choice.problem.message);
  }

  private requireTransfer(): NonNullable<MigrationRecord['transfer']> {
    if (!this.record.transfer) throw new MigrationFailure('NOT_PREPARED', 'the destination was never prepared');
    return this.record.transfer;
  }

  private async sourceAddress(): Promise<string> {
    const source = await this.store.hosts.get(this.record.source);
    if (!source?.capacity.address) throw new MigrationFailure('NO_ADDRESS', `source host ${this.record.source} reports no transfer address`);
    return source.capacity.address;
  }

  private async addBytes(bytes: number): Promise<void> {
    await this.save({ bytes: { sent: this.record.bytes.sent + bytes, total: Math.max(this.record.bytes.total, this.record.bytes.sent + bytes) } });
  }

  /**
   * After the commit: nothing fails back. Each step is retried here with backoff until it is done,
   * deferred when its host is (or becomes) down, and handed to the deferred steps when it keeps
   * failing on a host that is up; the migration then ends `completed` all the same — the workload
   * runs on the destination, only leftovers remain to clear, and the deferred steps clear them.
   */
  private async cleanup(): Promise<MigrationRecord> {
    const r = this.record;
    await this.save({ state: 'running', phase: 'cleanup' });
    const startedAt = Date.now();
    this.publish('cleanup', 'started', null);
    const steps: Array<{ step: string; ms: number }> = [];
    const notes: string[] = [];
    for (const step of this.strategy.cleanup) {
      const { side, command, timeout } = CLEANUP_STEPS[step];
      const hostId = side === 'source' ? r.source : r.destination;
      const stepStarted = Date.now();
      let inner: Array<{ step: string; ms: number }> = [];
      await this.cleanupStep(hostId, step, async () => {
        // the source's finish may have to wait for pages (post-copy); the destination's only stops daemons
        const finished =
          side === 'source'
            ? await this.finishSource(this.timeouts[timeout])
            : // an answer without the step timings (or malformed) still finished: its timings are only missing
              (FinishMigrationResult.safeParse(await this.call(hostId, command, { migrationId: r.id, role: side }, this.timeouts[timeout])).data ?? {});
        inner = finished.steps ?? [];
        if (finished.note) notes.push(`${step}: ${finished.note}`);
      });
      const innerMs = inner.reduce((sum, e) => sum + e.ms, 0);
      steps.push(...inner.map((e) => ({ step: `${step}: ${e.step}`, ms: e.ms })), {
        step: inner.length > 0 ? `${step}: request, reply, the rest` : step,
        ms: Math.max(0, Date.now() - stepStarted - innerMs),
      });
    }
    await this.store.redis.del(secretKey(this.store, r.id), tlsKey(this.store, r.id));
    const now = Date.now();
    const timeline = [
      ...r.timeline.filter((e) => e.phase !== 'cleanup'),
      { phase: 'cleanup' as const, startedAt, endedAt: now, ms: now - startedAt, steps: steps.slice(0, 32), ...(notes.length > 0 ? { note: notes.join('; ') } : {}) },
    ];
    await this.save({ state: 'completed', completed: [...new Set([...r.completed, 'cleanup' as const])], timeline, finishedAt: now });
    await this.store.endMigration(this.record);
    this.publish('cleanup', 'done', now - startedAt);
    this.publishFinished('completed');
    this.log.info({ freezeMs: this.record.freeze.agentMs, bytes: this.record.bytes.sent, ms: now - r.createdAt }, 'migration completed');
    return this.record;
  }

  /** One cleanup step, retried until done (see cleanup). */
  private async cleanupStep(hostId: string, step: 'finish-source' | 'finish-destination', call: () => Promise<unknown>): Promise<void> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      if (await this.deferIfDown(hostId, step)) return;
      try {
        await call();
        if (attempt > 0) this.log.info({ step, hostId, attempts: attempt + 1 }, 'cleanup step done after retries');
        return;
      } catch (err) {
        if (err instanceof LockLostError) throw err;
        const error = (err as Error).message;
        if (Date.now() - started >= this.timeouts.cleanupRetryMs) {
          this.log.warn({ step, hostId, attempts: attempt + 1, error }, 'cleanup step still failing: handed to the deferred steps, which retry it until done');
          await this.defer(hostId, step);
          return;
        }
        const delayMs = cleanupBackoffMs(attempt);
        this.log.warn({ step, hostId, attempt: attempt + 1, retryInMs: delayMs, error }, 'cleanup step failed; retrying (after the commit nothing fails back)');
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  /**
   * Before the commit, any failure lands here: the source makes itself ready to run the workload
   * again (once dumped), the destination's copy is removed, the source runs the workload (from its
   * frozen process or its images), the workload's record returns to what it was — in the
   * registry's UNDO_ORDER, so that the workload never runs on both hosts. A step that fails
   * throws, and the job retry runs the rollback again (idempotent); a source that cannot run the
   * workload again fails ready-source, and the destination's copy, then the only one, stays.
   */
  private async rollback(failure: MigrationFailure): Promise<MigrationRecord> {
    const r = this.record;
    const started = [...new Set([...r.completed, r.phase])];
    const steps = rollbackSteps(started, r.strategy);
    this.log.warn({ phase: r.phase, code: failure.code, error: failure.message, steps }, 'rolling back');
    await this.save({
      state: 'rolling-back',
      error: r.error ?? { code: failure.code, message: failure.message, phase: r.phase },
      rollback: { reason: failure.message, steps },
    });
    this.publish(r.phase, 'failed', null);
    for (const step of steps) {
      const { side, command, timeout, whenHostDown } = UNDO_STEPS[step];
      const hostId = side === 'source' ? r.source : r.destination;
      const call = async () => this.call(hostId, command, await this.undoRequest(step), this.timeouts[timeout]);
      if (whenHostDown === 'defer') {
        await this.unlessDown(hostId, step as DeferredMigrationStep['step'], call);
      } else if ((await this.store.hosts.get(hostId))?.state !== 'down') {
        await call();
      }
    }
    const workload = await this.store.workloads.get(r.workloadId);
    if (workload && workload.hostId === r.source) {
      await this.writes.putWorkload({ ...workload, phase: r.wasRunning ? 'running' : 'stopped', migratingTo: null, updatedAt: Date.now() });
    }
    await this.store.redis.del(secretKey(this.store, r.id), tlsKey(this.store, r.id));
    await this.save({ state: 'rolled-back', finishedAt: Date.now() });
    await this.store.endMigration(this.record);
    this.publishFinished('rolled-back');
    return this.record;
  }

  /**
   * An undo step's request. ready-source of a strategy whose dump leaves the pages on the
   * destination only (declared `pagesAfterDump: 'destination'`) tells the source where to pull
   * them back from: the destination's transfer daemon, which abort-destination (always after
   * ready-source) stops.
   */
  private async undoRequest(step: UndoStep): Promise<AgentRequest<'migration.resume'>> {
    const r = this.record;
    if (step !== 'ready-source') return { migrationId: r.id };
    const ready = { migrationId: r.id, readyOnly: true };
    if (this.strategy.pagesAfterDump !== 'destination' || !r.transfer || r.transfer.sharedRootfs) return ready;
    const secret = await this.store.redis.get(secretKey(this.store, r.id));
    if (!secret) return ready;
    const { address, rsyncPort, pageServerPort } = r.transfer;
    return { ...ready, pagesFrom: { destination: { address, rsyncPort, pageServerPort }, secret } };
  }

  /**
   * The source's finish waits for a post-copy destination to pull its last page. Should the
   * destination die meanwhile, nobody would ever pull them: the source is told to stop serving,
   * and the workload's lock goes to the failover that restarts it. Only a strategy declared
   * `postCopy` has pages to pull: for every other one a destination that is down changes nothing
   * here (its own finish is deferred), and a failed request is a failed request, retried by the
   * caller.
   */
  private async finishSource(timeoutMs: number): Promise<{ steps?: Array<{ step: string; ms: number }>; note?: string }> {
    const r = this.record;
    const finishing = this.call(r.source, 'migration.finish', { migrationId: r.id, role: 'source' }, timeoutMs);
    const settled = finishing.then(
      () => true,
      () => true,
    );
    while (this.strategy.postCopy && !(await settledWithin(settled, PAGE_WATCH_MS))) {
      if ((await this.store.hosts.get(r.destination))?.state !== 'down') continue;
      this.log.warn({ destination: r.destination }, 'the destination died while pulling pages: the source stops serving them');
      await this.call(r.source, 'migration.finish', { migrationId: r.id, role: 'source', abandon: true }, timeoutMs);
      break;
    }
    // post-copy: the memory moved after the restore counts in the migration's bytes too
    const finished = FinishMigrationResult.safeParse(await finishing);
    if (!finished.success) return {};
    if (finished.data.lazyBytes) await this.addBytes(finished.data.lazyBytes);
    return { steps: finished.data.steps ?? [], ...(finished.data.lazyMs === undefined ? {} : { note: `the last lazy page left ${finished.data.lazyMs} ms after the dump` }) };
  }

  /**
   * A rollback or cleanup step on `hostId`, skipped when that host is declared down: it has fenced
   * itself (lease) and its workloads are failover's; what it missed is made good when it returns
   * (DeferredSteps runs the step then; the reconciler discards copies the host no longer owns).
   * Retrying against a dead host would only hold the workload's lock away from the failover.
   */
  private async unlessDown(hostId: string, step: DeferredMigrationStep['step'], call: () => Promise<unknown>): Promise<void> {
    if (await this.deferIfDown(hostId, step)) return;
    await call();
  }

  /** Defers `step` when `hostId` is declared down (see unlessDown); true if it did. */
  private async deferIfDown(hostId: string, step: DeferredMigrationStep['step']): Promise<boolean> {
    if ((await this.store.hosts.get(hostId))?.state !== 'down') return false;
    this.log.warn({ step, hostId }, 'step deferred: the host is down');
    await this.defer(hostId, step);
    return true;
  }

  private async defer(hostId: string, step: DeferredMigrationStep['step']): Promise<void> {
    const r = this.record;
    await this.store.deferredSteps.put(`${r.id}:${step}`, { migrationId: r.id, workloadId: r.workloadId, hostId, step, epochFrom: r.epochFrom, at: Date.now() });
  }

  private async save(patch: Partial<MigrationRecord>): Promise<void> {
    this.record = { ...this.record, ...patch, updatedAt: Date.now() };
    if (this.deferWrites) return; // lands with the next write (writesDeferred)
    await this.writes.putMigration(this.record);
    await this.progress(this.record);
  }

  /** An agent request, made only while this runner still holds the workload's lock. */
  private async call<C extends AgentCommand>(hostId: string, command: C, request: AgentRequest<C>, timeoutMs: number): Promise<AgentResult<C>> {
    await this.writes.check();
    return this.agents.call(hostId, command, request, timeoutMs);
  }

  private eventContext(): Pick<MigrationEvent, 'bytes' | 'strategy' | 'source' | 'destination'> {
    return { bytes: this.record.bytes, strategy: this.record.strategy, source: this.record.source, destination: this.record.destination };
  }

  private publish(phase: MigrationPhase, status: MigrationEvent['status'], ms: number | null): void {
    const event: MigrationEvent = {
      type: 'migration.phase',
      migrationId: this.record.id,
      workloadId: this.record.workloadId,
      state: this.record.state,
      phase,
      status,
      at: Date.now(),
      ms,
      ...this.eventContext(),
    };
    this.nc.publish(subjects.migrationEvents(this.record.id), encodeJson(event));
  }

  private publishFinished(status: 'completed' | 'rolled-back'): void {
    const event: MigrationEvent = {
      type: 'migration.finished',
      migrationId: this.record.id,
      workloadId: this.record.workloadId,
      state: this.record.state,
      phase: this.record.phase,
      status,
      at: Date.now(),
      ms: this.record.finishedAt === null ? null : this.record.finishedAt - this.record.createdAt,
      ...this.eventContext(),
    };
    this.nc.publish(subjects.migrationEvents(this.record.id), encodeJson(event));
  }
}

/** Whether `settled` resolved within `ms` (it never rejects). */
async function settledWithin(settled: Promise<boolean>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}
