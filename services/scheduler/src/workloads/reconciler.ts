import type { CapacityReport, ContainerStatus, SupersededCopy, WorkloadRecord } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { RedisLock, withLock, type ClusterStore } from '@ferry/store';
import type { AgentClient } from './agent-client.ts';
import type { WorkloadRecords } from './lifecycle.ts';
import type { CopyDiscards } from './discards.ts';
import { decideCopy, type CopyDecision } from './reconcile-decision.ts';

/**
 * Brings hosts and records in line. Level-triggered: every report is compared with the records
 * (one Redis round trip per report), whether or not a container changed, so a copy the cluster
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
 *   started again, one generation on (its host lost its lease but was never declared down).
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
  ) {}

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
    const records = await this.records.getMany(containers.map((c) => c.id));
    const actions: Array<{ container: ContainerStatus; record: WorkloadRecord; decision: CopyDecision }> = [];
    const strays: string[] = [];
    containers.forEach((container, i) => {
      const record = records[i] ?? null;
      const decision = decideCopy(hostId, container, record);
      if (decision.kind === 'in-line') return;
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
    // a job (migration, failover, lifecycle) holding a workload decides about it; look again at the next report
    const held = await Promise.all(actions.map((a) => RedisLock.isHeld(this.store.redis, this.store.keys.workloadLock(a.container.id))));
    const free = actions.filter((_, i) => !held[i]);
    const superseded = free.filter((a) => a.decision.kind === 'discard').map((a) => ({ id: a.container.id, owner: a.record.hostId, epoch: a.record.epoch }));
    if (superseded.length) this.superseded.set(hostId, superseded);
    else this.superseded.delete(hostId);
    for (const a of free) void this.act(hostId, a.container, a.record, a.decision);
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
