import type { CapacityReport, ContainerStatus, SupersededCopy, WorkloadRecord } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { RedisLock, withLock, type ClusterStore } from '@ferry/store';
import type { AgentClient } from './agent-client.ts';
import type { WorkloadRecords } from './lifecycle.ts';
import type { CopyDiscards } from './discards.ts';
import { rebuiltRecord, reviewCopy, type CopyDecision, type GenerationView } from './reconcile-decision.ts';
import type { ClusterGeneration } from './generation.ts';
import { FreshReads, doubtfulCopies } from './reconcile-reads.ts';

/** How often at most the reconciler brings the change-log copy up to date (see copied). */
export const COPY_REFRESH_MS = 50;

/** A copy of every workload record that follows the change log (RecordCache's refresh). */
export interface WorkloadCopy {
  refresh(): Promise<ReadonlyMap<string, WorkloadRecord>>;
}

/**
 * Brings hosts and records in line. Level-triggered: every report is compared with the records
 * (from the change-log copy, see readRecords), whether or not a container changed, so a copy the cluster
 * superseded while its host was away is caught by the first report after the host is back — and
 * after any change of ownership — not only when its own state happens to change. Actions (see
 * decideCopy) never run while a job holds the workload, and at most one runs per copy at a time:
 * - a container that stopped on its own (exited, crashed, OOM-killed) moves its workload from
 *   running to stopped, with the reason;
 * - a copy on a host that no longer owns the workload, or at an older epoch, is destroyed — never
 *   run; its root filesystem stays when it lives on a shared pool the new owner runs from. The
 *   host also hears of it in its next lease acknowledgement and stops the copy itself (see
 *   supersededOn), should the destroy command not reach it;
 * - a copy frozen by fencing that is still the current one is thawed; one stopped by fencing is
 *   started again, one generation on (its host lost its lease but was never declared down);
 * - after Redis lost its data (see ClusterGeneration and reviewCopy): a copy stamped with an earlier
 *   cluster generation and without a record has its record rebuilt from the host (spec, epoch,
 *   HA), the higher epoch winning between hosts; copies the records confirm are stamped with the
 *   current generation.
 */
export class WorkloadReconciler {
  private readonly strays = new Set<string>();
  /** copies with an action under way (host/id) */
  private readonly acting = new Set<string>();
  /** per host: a pass under way, and the newest report that came in meanwhile */
  private readonly passes = new Map<string, { next: CapacityReport | null }>();
  /** per host: the copies it runs that the cluster superseded, as of its last report */
  private readonly superseded = new Map<string, SupersededCopy[]>();

  constructor(
    private readonly store: ClusterStore,
    private readonly records: WorkloadRecords,
    private readonly agents: AgentClient,
    private readonly discards: Pick<CopyDiscards, 'checkStrays'>,
    private readonly log: Logger,
    private readonly generation: Pick<ClusterGeneration, 'current'> | null = null,
    /** the process's change-log copy of every workload (RecordCache), read before Redis; null: Redis only */
    private readonly copy: WorkloadCopy | null = null,
  ) {}

  private readonly freshReads = new FreshReads();
  /** the copy's latest refresh, shared by the passes that start within COPY_REFRESH_MS of it */
  private copyRead: { at: number; records: Promise<ReadonlyMap<string, WorkloadRecord>> } | null = null;

  /** hosts with a container.stamp under way */
  private readonly stamping = new Set<string>();

  onReport(report: CapacityReport): void {
    const pass = this.passes.get(report.hostId);
    if (pass) {
      pass.next = report; // one pass per host at a time; the newest report waiting wins
      return;
    }
    const state = { next: null as CapacityReport | null };
    this.passes.set(report.hostId, state);
    void (async () => {
      let current: CapacityReport | null = report;
      while (current) {
        await this.pass(current).catch((err: unknown) => this.log.error({ err, hostId: current!.hostId }, 'reconciling a host report failed'));
        current = state.next;
        state.next = null;
      }
      this.passes.delete(report.hostId);
    })();
  }

  /** The copies on hostId that its agent must not keep running (sent along with its lease acknowledgement). */
  supersededOn(hostId: string): SupersededCopy[] {
    return this.superseded.get(hostId) ?? [];
  }

  private async pass(report: CapacityReport): Promise<void> {
    const { hostId, containers } = report;
    const generation = await this.currentGeneration();
    const records = await this.readRecords(hostId, containers, generation);
    const actions: Array<{ container: ContainerStatus; record: WorkloadRecord; decision: CopyDecision }> = [];
    const strays: string[] = [];
    const toStamp: string[] = [];
    const adoptions: ContainerStatus[] = [];
    const now = Date.now();
    containers.forEach((container, i) => {
      const record = records[i] ?? null;
      const { decision, stamp } = reviewCopy(hostId, container, record, generation, now);
      if (stamp) toStamp.push(container.id);
      if (decision.kind === 'in-line') return;
      if (decision.kind === 'adopt') {
        adoptions.push(container);
        return;
      }
      if (decision.kind === 'stray') {
        strays.push(container.id);
        const key = `${hostId}/${container.id}`;
        if (!this.strays.has(key)) this.log.warn({ hostId, workload: container.id }, 'host runs a container of no known workload');
        this.strays.add(key);
        return;
      }
      actions.push({ container, record: record!, decision });
    });
    if (strays.length) this.discards.checkStrays(hostId, strays);
    if (generation && toStamp.length) void this.stampCopies(hostId, generation.id, toStamp);
    if (generation) for (const container of adoptions) void this.adopt(hostId, container, generation);
    // a job (migration, failover, lifecycle) holding a workload decides about it; look again at the next report
    const held = await Promise.all(actions.map((a) => RedisLock.isHeld(this.store.redis, this.store.keys.workloadLock(a.container.id))));
    const free = actions.filter((_, i) => !held[i]);
    const superseded = free.filter((a) => a.decision.kind === 'discard').map((a) => ({ id: a.container.id, owner: a.record.hostId, epoch: a.record.epoch }));
    if (superseded.length) this.superseded.set(hostId, superseded);
    else this.superseded.delete(hostId);
    for (const a of free) void this.act(hostId, a.container, a.record, a.decision);
  }

  /**
   * The records of a host's copies. From the process's change-log copy (brought up to date at most
   * COPY_REFRESH_MS before: it reflects every write completed before that refresh), with the records of
   * the copies it does not find plainly in line read fresh from Redis — every action is decided
   * on a fresh read, as before. Read fresh whole when the copy cannot answer (none, or its refresh
   * failed) and when FreshReads says so (the host's first pass, every 30 s, a new generation).
   */
  private async readRecords(hostId: string, containers: ContainerStatus[], generation: GenerationView | null): Promise<Array<WorkloadRecord | null>> {
    const ids = containers.map((c) => c.id);
    const now = Date.now();
    const generationId = generation?.id ?? null;
    const copied = this.copy && !this.freshReads.due(hostId, now, generationId) ? await this.copied(ids) : null;
    if (!copied) {
      const records = await this.records.getMany(ids);
      this.freshReads.readFresh(hostId, now, generationId);
      return records;
    }
    const doubtful = doubtfulCopies(hostId, containers, copied, generation, now);
    if (doubtful.length === 0) return copied;
    const fresh = await this.records.getMany(doubtful.map((i) => ids[i]!));
    const records = [...copied];
    doubtful.forEach((index, j) => {
      records[index] = fresh[j] ?? null;
    });
    return records;
  }

  /**
   * The ids' records from the change-log copy; null (read fresh instead) when it cannot be brought
   * up to date. Passes within COPY_REFRESH_MS of each other share one refresh (a thousand reports
   * a second would otherwise each ask Redis for the log): a copy that much behind can only delay
   * an action to the host's next report, never cause one (actions are decided on fresh reads).
   */
  private async copied(ids: string[]): Promise<Array<WorkloadRecord | null> | null> {
    const now = Date.now();
    if (!this.copyRead || now - this.copyRead.at >= COPY_REFRESH_MS) this.copyRead = { at: now, records: this.copy!.refresh() };
    const read = this.copyRead;
    try {
      const all = await read.records;
      return ids.map((id) => all.get(id) ?? null);
    } catch (err) {
      if (this.copyRead === read) this.copyRead = null;
      this.log.debug({ err: (err as Error).message }, 'the workload copy cannot be brought up to date: reading the records fresh');
      return null;
    }
  }

  private async currentGeneration(): Promise<GenerationView | null> {
    if (!this.generation) return null;
    try {
      return await this.generation.current();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot read the cluster generation: neither rebuilding nor stamping this round');
      return null;
    }
  }

  /** Tells a host which of its copies this generation's records confirm (one command per host at a time). */
  private async stampCopies(hostId: string, generation: string, ids: string[]): Promise<void> {
    if (this.stamping.has(hostId)) return;
    this.stamping.add(hostId);
    try {
      await this.agents.call(hostId, 'container.stamp', { generation, ids }, 10_000);
    } catch (err) {
      this.log.debug({ err: (err as Error).message, hostId }, 'stamping copies failed; again with the next report');
    } finally {
      this.stamping.delete(hostId);
    }
  }

  /**
   * Rebuilds a workload's record from its host's copy after the cluster state was lost: spec
   * (HA included) from the host, the copy's epoch, phase from its state; history on the host.
   */
  private async adopt(hostId: string, container: ContainerStatus, generation: GenerationView): Promise<void> {
    const key = `${hostId}/${container.id}`;
    if (this.acting.has(key)) return;
    this.acting.add(key);
    try {
      await withLock(this.store.redis, this.store.keys.workloadLock(container.id), `reconciler-${process.pid}`, 60_000, async () => {
        if (await this.records.get(container.id)) return; // rebuilt from another host meanwhile: the next report decides
        if (await this.store.copyDiscards.get(key)) return; // deleted in this generation: the delete's note decides
        const status = await this.agents.call(hostId, 'container.status', { id: container.id }, 30_000);
        if (!status.spec) {
          this.log.warn({ hostId, workload: container.id }, 'cannot rebuild the workload record: the host did not send its spec (older agent)');
          return;
        }
        if (status.epoch !== container.epoch) return; // it changed meanwhile: the next report decides
        const cpu = (await this.store.hosts.get(hostId))?.capacity.cpu ?? null;
        const record = rebuiltRecord(hostId, { ...status, spec: status.spec }, generation.id, cpu, Date.now());
        await this.records.rebuild(record, `rebuilt from host ${hostId} after the cluster state was lost`);
        const ha = record.spec.ha.enabled ? `HA-protected, priority ${record.spec.ha.priority}` : 'not HA-protected';
        this.log.warn({ hostId, workload: container.id, epoch: record.epoch, phase: record.phase }, 'rebuilt a workload record from its host after the cluster state was lost');
        await this.store.addHistory(hostId, {
          at: Date.now(),
          kind: 'rebuilt',
          message: `rebuilt ${container.id} from host ${hostId} after the cluster state was lost (epoch ${record.epoch}, ${status.state}, ${ha})`,
          data: { workload: container.id, epoch: record.epoch, generation: generation.id, from: container.generation },
        });
      });
    } catch (err) {
      this.log.error({ err, key }, 'rebuilding a workload record failed; trying again with the next report');
    } finally {
      this.acting.delete(key);
    }
  }

  /** A newer copy from before the loss than the one a record was rebuilt from: the record follows it. */
  private async takeOver(hostId: string, container: ContainerStatus, record: WorkloadRecord, why: string): Promise<void> {
    await withLock(this.store.redis, this.store.keys.workloadLock(container.id), `reconciler-${process.pid}`, 60_000, async () => {
      const fresh = await this.records.get(container.id);
      if (!fresh?.recovered || fresh.hostId !== record.hostId || fresh.epoch !== record.epoch) return; // moved on meanwhile
      const running = container.state === 'running' || container.state === 'frozen' || container.state === 'migrating';
      const previous = fresh.hostId;
      this.log.warn({ hostId, workload: container.id, from: previous, epoch: container.epoch }, why);
      await this.records.update(
        fresh,
        {
          hostId,
          epoch: container.epoch,
          phase: running || container.exit?.reason === 'fenced' ? 'running' : 'stopped',
          desired: running || container.exit?.reason === 'fenced' ? 'running' : 'stopped',
          lastExit: container.exit,
          placement: { hostId, reason: `rebuilt from host ${hostId} after the cluster state was lost (newest copy)`, refused: {} },
          recovered: { ...fresh.recovered, at: Date.now(), from: hostId, epoch: container.epoch },
        },
        null,
        why,
      );
      const message = `rebuilt ${container.id} from host ${hostId} after the cluster state was lost: ${why}; the copy on ${previous} is discarded`;
      await this.store.addHistory(hostId, { at: Date.now(), kind: 'rebuilt', message });
      if (previous) await this.store.addHistory(previous, { at: Date.now(), kind: 'rebuilt', message });
    });
  }

  private async act(hostId: string, container: ContainerStatus, record: WorkloadRecord, decision: CopyDecision): Promise<void> {
    const key = `${hostId}/${container.id}`;
    if (this.acting.has(key)) return;
    this.acting.add(key);
    try {
      switch (decision.kind) {
        case 'discard': {
          const keepRootfs = (await this.store.hosts.get(hostId))?.capacity.pools.find((p) => p.id === record.spec.pool)?.shared ?? false;
          this.log.warn({ hostId, workload: container.id, why: decision.why }, 'discarding a stale copy');
          await this.agents.call(hostId, 'container.destroy', { id: container.id, keepRootfs }, 60_000);
          await this.store.addHistory(hostId, { at: Date.now(), kind: 'stale-copy', message: `discarded ${container.id} (${decision.why}); never run` });
          break;
        }
        case 'thaw':
          this.log.info({ hostId, workload: container.id }, 'fenced copy is still the current one: thawing');
          await this.agents.call(hostId, 'container.thaw', { id: container.id }, 60_000);
          break;
        case 'restart-fenced':
          await this.restartFenced(hostId, container.id, record.epoch);
          break;
        case 'take-over':
          await this.takeOver(hostId, container, record, decision.why);
          break;
        case 'record-stopped':
          await this.records.update(record, { phase: 'stopped', lastExit: container.exit }, null, `container ${decision.reason} on ${hostId}`);
          break;
        default:
          break;
      }
    } catch (err) {
      this.log.error({ err, key, action: decision.kind }, 'reconciling a workload failed; trying again with the next report');
    } finally {
      this.acting.delete(key);
    }
  }

  private async restartFenced(hostId: string, id: string, epoch: number): Promise<void> {
    await withLock(this.store.redis, this.store.keys.workloadLock(id), `reconciler-${process.pid}`, 60_000, async () => {
      const fresh = await this.records.get(id);
      if (!fresh || fresh.hostId !== hostId || fresh.epoch !== epoch) return; // someone else moved on
      this.log.warn({ hostId, workload: id }, 'fenced copy is still the current one: starting it again');
      const next = await this.records.update(fresh, { epoch: epoch + 1, phase: 'starting' }, null, `stopped by fencing on ${hostId}; started again`);
      await this.agents.call(hostId, 'container.start', { id, epoch: next.epoch }, 60_000);
      await this.records.update(next, { phase: 'running', lastExit: null }, null);
    });
  }
}
