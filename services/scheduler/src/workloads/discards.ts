import type { CopyToDiscard } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { withLock, type ClusterStore } from '@ferry/store';
import type { AgentClient } from './agent-client.ts';

const LOCK_MS = 60_000;
const key = (hostId: string, workloadId: string) => `${hostId}/${workloadId}`;

/** Whether a host is away for good enough that a delete must not wait for it: down, or removed. */
export async function hostAway(store: ClusterStore, hostId: string): Promise<'removed' | 'down' | null> {
  if (await store.removedHosts.get(hostId)) return 'removed';
  return (await store.hosts.get(hostId))?.state === 'down' ? 'down' : null;
}

/**
 * Copies of workloads deleted while their host was down or removed. The delete drops the record
 * at once (a dead host must not hold a delete up); the host's copy — container and root
 * filesystem — is discarded when that host reports it again. The reconciler finds such a container
 * without a record (a stray) and hands it here, where the delete left this note behind for it.
 */
export class CopyDiscards {
  private readonly acting = new Set<string>();

  constructor(
    private readonly store: ClusterStore,
    private readonly agents: AgentClient,
    private readonly log: Logger,
  ) {}

  async remember(hostId: string, workloadId: string, reason: string): Promise<void> {
    const entry: CopyToDiscard = { hostId, workloadId, at: Date.now(), reason };
    await this.store.copyDiscards.put(key(hostId, workloadId), entry);
  }

  /**
   * Called by the reconciler with a host's containers that have no workload record (rare): those
   * a delete left a note for are discarded. Reports without such containers cost nothing here.
   */
  checkStrays(hostId: string, workloadIds: string[]): void {
    void (async () => {
      const pending = await this.store.copyDiscards.getMany(workloadIds.map((id) => key(hostId, id)));
      for (const entry of pending) if (entry) void this.discard(entry);
    })().catch((err: unknown) => this.log.error({ err, hostId }, 'checking copies to discard failed'));
  }

  private async discard(entry: CopyToDiscard): Promise<void> {
    const k = key(entry.hostId, entry.workloadId);
    if (this.acting.has(k)) return;
    this.acting.add(k);
    try {
      await withLock(this.store.redis, this.store.keys.workloadLock(entry.workloadId), `discard-${k}`, LOCK_MS, async () => {
        if (!(await this.store.copyDiscards.get(k))) return; // another replica did it meanwhile
        // A workload of that id exists again: its record decides about this copy (the reconciler).
        if (!(await this.store.workloads.get(entry.workloadId))) {
          this.log.warn({ hostId: entry.hostId, workload: entry.workloadId, reason: entry.reason }, 'discarding the copy of a deleted workload');
          await this.agents.call(entry.hostId, 'container.destroy', { id: entry.workloadId }, LOCK_MS);
          await this.store.addHistory(entry.hostId, { at: Date.now(), kind: 'stale-copy', message: `discarded ${entry.workloadId} (${entry.reason}); never run again` });
        }
        await this.store.copyDiscards.remove(k);
      });
    } catch (err) {
      this.log.warn({ err: (err as Error).message, hostId: entry.hostId, workload: entry.workloadId }, 'discarding a deleted workload’s copy failed; trying again with the next report');
    } finally {
      this.acting.delete(k);
    }
  }
}
