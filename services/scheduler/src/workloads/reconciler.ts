import type { CapacityReport, ContainerStatus } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { RedisLock, type ClusterStore } from '@ferry/store';
import type { WorkloadRecords } from './lifecycle.ts';

/**
 * Brings workload records in line with what hosts report: a container that stopped on its own
 * (exited, crashed, OOM-killed) moves its workload from running to stopped with the reason.
 * Only acts on changes, and never while a job holds the workload.
 */
export class WorkloadReconciler {
  private readonly seen = new Map<string, string>();
  private readonly strays = new Set<string>();

  constructor(
    private readonly store: ClusterStore,
    private readonly records: WorkloadRecords,
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
    if (!record || record.hostId !== hostId) {
      const key = `${hostId}/${container.id}`;
      if (!this.strays.has(key)) this.log.warn({ hostId, workload: container.id, owner: record?.hostId ?? null }, 'host runs a container Ferry does not place there');
      this.strays.add(key);
      return;
    }
    if (await RedisLock.isHeld(this.store.redis, this.store.keys.workloadLock(container.id))) return;
    if (record.phase === 'running' && container.state === 'stopped') {
      const reason = container.exit?.reason ?? 'exited';
      await this.records.update(record, { phase: 'stopped', lastExit: container.exit }, null, `container ${reason} on ${hostId}`);
    }
  }
}
