import type { NatsConnection } from 'nats';
import { subjects, type WorkloadEvent, type WorkloadRecord } from '@ferry/protocol';
import { encodeJson, type Logger } from '@ferry/runtime';
import type { ClusterStore } from '@ferry/store';

/** Changes a workload record and announces the change: the one way phases move. */
export class WorkloadRecords {
  constructor(
    private readonly store: ClusterStore,
    private readonly nc: NatsConnection,
    private readonly log: Logger,
  ) {}

  get(id: string): Promise<WorkloadRecord | null> {
    return this.store.workloads.get(id);
  }

  getMany(ids: string[]): Promise<Array<WorkloadRecord | null>> {
    return this.store.workloads.getMany(ids);
  }

  async update(record: WorkloadRecord, patch: Partial<WorkloadRecord>, jobId: string | null, reason?: string): Promise<WorkloadRecord> {
    const next: WorkloadRecord = { ...record, ...patch, updatedAt: Date.now() };
    await this.store.workloads.put(next.spec.id, next);
    if (next.phase !== record.phase || next.hostId !== record.hostId) {
      this.log.info({ workload: next.spec.id, from: record.phase, to: next.phase, hostId: next.hostId, jobId, reason }, 'workload phase');
      this.publish({ type: 'workload.phase', workloadId: next.spec.id, phase: next.phase, hostId: next.hostId, at: next.updatedAt, jobId, ...(reason ? { reason } : {}) });
    }
    return next;
  }

  /** Writes a record rebuilt from a host after the cluster state was lost, and announces it. */
  async rebuild(record: WorkloadRecord, reason: string): Promise<void> {
    await this.store.workloads.put(record.spec.id, record);
    this.log.info({ workload: record.spec.id, phase: record.phase, hostId: record.hostId, reason }, 'workload phase');
    this.publish({ type: 'workload.phase', workloadId: record.spec.id, phase: record.phase, hostId: record.hostId, at: record.updatedAt, jobId: null, reason });
  }

  async remove(record: WorkloadRecord, jobId: string | null): Promise<void> {
    await this.store.workloads.remove(record.spec.id);
    this.log.info({ workload: record.spec.id, jobId }, 'workload destroyed');
    this.publish({ type: 'workload.destroyed', workloadId: record.spec.id, phase: null, hostId: record.hostId, at: Date.now(), jobId });
  }

  private publish(event: WorkloadEvent): void {
    this.nc.publish(subjects.workloadEvents(event.workloadId), encodeJson(event));
  }
}
