import type { WorkloadLookups } from '@ferry/core';
import type { WorkloadRecord } from '@ferry/protocol';
import type { RecordCacheFollower } from './record-cache.ts';

const addressKey = (network: string, address: string) => `${network}\u0000${address}`;

/**
 * The lookups a create's checks make of the existing workloads (is the id taken, who holds this
 * address), kept by following a RecordCache of the workloads: each changed record updates them,
 * so a check is a map lookup rather than a walk over every workload.
 */
export class WorkloadIndex implements WorkloadLookups, RecordCacheFollower<WorkloadRecord> {
  private readonly ids = new Set<string>();
  /** network + address → the workloads declaring it (more than one only in a cluster already in conflict) */
  private readonly holders = new Map<string, Set<string>>();

  reset(): void {
    this.ids.clear();
    this.holders.clear();
  }

  changed(id: string, before: WorkloadRecord | undefined, after: WorkloadRecord | undefined): void {
    for (const a of before?.spec.networks ?? []) {
      const key = addressKey(a.network, a.address);
      const set = this.holders.get(key);
      set?.delete(id);
      if (set?.size === 0) this.holders.delete(key);
    }
    if (!after) {
      this.ids.delete(id);
      return;
    }
    this.ids.add(id);
    for (const a of after.spec.networks) {
      const key = addressKey(a.network, a.address);
      const set = this.holders.get(key);
      if (set) set.add(id);
      else this.holders.set(key, new Set([id]));
    }
  }

  exists(id: string): boolean {
    return this.ids.has(id);
  }

  addressOwner(network: string, address: string, except: string | undefined): string | undefined {
    for (const id of this.holders.get(addressKey(network, address)) ?? []) if (id !== except) return id;
    return undefined;
  }
}
