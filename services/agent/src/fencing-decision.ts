/**
 * When a host fences its HA containers (docs/failover.md, "Isolation is not failure"). Pure.
 * - declared failed (a declaration lies in one of its shared pools): fence, whatever else holds;
 * - lease valid (a scheduler heard it recently): keep running;
 * - lease lapsed, no shared pool (no second channel): fence, as a host that cannot tell isolation
 *   from failure must (its HA containers on shared pools could be restarted elsewhere… it has none,
 *   so in practice nothing is stopped: only HA containers on shared pools are fenced);
 * - lease lapsed but its heartbeat still reaches its shared pools: it is isolated from the control
 *   plane, not failed — its peers see it alive, nobody restarts its workloads: keep running;
 * - lease lapsed and the heartbeat no longer reaches storage: it may be declared failed: fence.
 */
export interface FencingInputs {
  leaseValid: boolean;
  /** it has a shared pool to write its heartbeat to */
  storageChannel: boolean;
  /** its heartbeat reached every shared pool within a lease period */
  storageOk: boolean;
  declaredFailed: boolean;
}

export type FencingVerdict = { fence: false; why: 'lease-valid' | 'isolated' } | { fence: true; why: 'declared-failed' | 'lease-lapsed' | 'lease-and-storage-lost' };

export function fencingVerdict(i: FencingInputs): FencingVerdict {
  if (i.declaredFailed) return { fence: true, why: 'declared-failed' };
  if (i.leaseValid) return { fence: false, why: 'lease-valid' };
  if (!i.storageChannel) return { fence: true, why: 'lease-lapsed' };
  if (i.storageOk) return { fence: false, why: 'isolated' };
  return { fence: true, why: 'lease-and-storage-lost' };
}
