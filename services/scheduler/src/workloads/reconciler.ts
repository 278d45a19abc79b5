import type { CapacityReport, ContainerStatus } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { RedisLock, withLock, type ClusterStore } from '@ferry/store';
import type { AgentClient } from './agent-client.ts';
import type { WorkloadRecords } from './lifecycle.ts';

/**
 * Brings hosts and records in line, acting only on changes and never while a job holds the
 * workload:
 * - a container that stopped on its own (exited, crashed, OOM-killed) moves its workload from
 *   running to stopped, with the reason;
 * - a copy on a host that no longer owns the workload, or at an older epoch (a host that comes back
 *   after its workloads were restarted elsewhere), is destroyed — never run; its root filesystem
 *   stays when it lives on a shared pool the new owner runs from;
 * - a copy frozen by fencing that is still the current one is thawed; one stopped by fencing is
 *   started again, one generation on (its host lost its lease but was never declared down).
 */
export class WorkloadReconciler {
  private readonly seen = new Map<string, string>();
  private readonly strays = new Set<string>();

  constructor(
    private readonly store: ClusterStore,
    private readonly records: WorkloadRecords,
    private readonly agents: AgentClient,
    private readonly log: Logger,
  ) {}

  onReport(report: CapacityReport): void {
    for (const container of report.containers) {
      const key = `${report.hostId}/${container.id}`;
      const fingerprint = `${container.state}/${container.exit?.at ?? ''}/${container.epoch}`;
      if (this.seen.get(key) === fingerprint) continue;
      this.seen.set(key, fingerprint);
      void this.reconcile(report.hostId, container).catch((err: unknown) => {
        this.seen.delete(key); // try again with the next report
        this.log.error({ err, key }, 'reconciling a workload failed');
      });
    }
  }

  private async reconcile(hostId: string, container: ContainerStatus): Promise<void> {
    const record = await this.records.get(container.id);
    if (!record) {
      const key = `${hostId}/${container.id}`;
      if (!this.strays.has(key)) this.log.warn({ hostId, workload: container.id }, 'host runs a container of no known workload');
      this.strays.add(key);
      return;
    }
    if (await RedisLock.isHeld(this.store.redis, this.store.keys.workloadLock(container.id))) {
      this.seen.delete(`${hostId}/${container.id}`); // busy now: look again at the next report
      return;
    }
    if (record.migratingTo === hostId) return;
    if (record.hostId !== hostId || container.epoch < record.epoch) {
      const keepRootfs = (await this.store.hosts.get(hostId))?.capacity.pools.find((p) => p.id === record.spec.pool)?.shared ?? false;
      const why = `owner ${record.hostId} at epoch ${record.epoch}, this copy at epoch ${container.epoch}`;
      this.log.warn({ hostId, workload: container.id, why }, 'discarding a stale copy');
      await this.agents.call(hostId, 'container.destroy', { id: container.id, keepRootfs }, 60_000);
      await this.store.addHistory(hostId, { at: Date.now(), kind: 'stale-copy', message: `discarded ${container.id} (${why}); never run` });
      return;
    }
    if (container.state === 'frozen') {
      this.log.info({ hostId, workload: container.id }, 'fenced copy is still the current one: thawing');
      await this.agents.call(hostId, 'container.thaw', { id: container.id }, 60_000);
      return;
    }
    if (record.phase === 'running' && record.desired === 'running' && container.state === 'stopped' && container.exit?.reason === 'fenced') {
      await this.restartFenced(hostId, container.id, record.epoch);
      return;
    }
    if (record.phase === 'running' && container.state === 'stopped') {
      const reason = container.exit?.reason ?? 'exited';
      await this.records.update(record, { phase: 'stopped', lastExit: container.exit }, null, `container ${reason} on ${hostId}`);
    }
  }

  private async restartFenced(hostId: string, id: string, epoch: number): Promise<void> {
    const held = await withLock(this.store.redis, this.store.keys.workloadLock(id), `reconciler-${process.pid}`, 60_000, async () => {
      const fresh = await this.records.get(id);
      if (!fresh || fresh.hostId !== hostId || fresh.epoch !== epoch) return; // someone else moved on
      this.log.warn({ hostId, workload: id }, 'fenced copy is still the current one: starting it again');
      const next = await this.records.update(fresh, { epoch: epoch + 1, phase: 'starting' }, null, `stopped by fencing on ${hostId}; started again`);
      await this.agents.call(hostId, 'container.start', { id, epoch: next.epoch }, 60_000);
      await this.records.update(next, { phase: 'running', lastExit: null }, null);
    });
    if (!held) this.seen.delete(`${hostId}/${id}`);
  }
}
