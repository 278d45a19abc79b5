import type { ContainerStatus, WorkloadRecord } from '@ferry/protocol';

/**
 * What to do about one container a host reports, given the workload's record: the closed set of
 * the reconciler's actions. Pure: the reconciler reads the records, this decides, the reconciler acts.
 */
export type CopyDecision =
  | { kind: 'in-line' }
  /** no record: logged once and otherwise left alone, unless a delete left a note to discard it (CopyDiscards) */
  | { kind: 'stray' }
  /** a copy the cluster has superseded (another owner, or an older epoch): stop and discard it */
  | { kind: 'discard'; why: string }
  /** frozen by fencing and still the current copy: thaw it */
  | { kind: 'thaw' }
  /** stopped by fencing, still the current copy, and meant to run: start it again, one epoch on */
  | { kind: 'restart-fenced' }
  /** stopped on its own (exit, crash, OOM) while the record says running: record that */
  | { kind: 'record-stopped'; reason: string };

export function decideCopy(hostId: string, container: ContainerStatus, record: WorkloadRecord | null): CopyDecision {
  if (!record) return { kind: 'stray' };
  // a migration's destination runs its copy before the commit hands it the record
  if (record.migratingTo === hostId) return { kind: 'in-line' };
  if (record.hostId !== hostId || container.epoch < record.epoch) {
    return { kind: 'discard', why: `owner ${record.hostId ?? 'none'} at epoch ${record.epoch}, this copy at epoch ${container.epoch}` };
  }
  if (container.state === 'frozen') return { kind: 'thaw' };
  if (container.state === 'stopped' && record.phase === 'running') {
    if (record.desired === 'running' && container.exit?.reason === 'fenced') return { kind: 'restart-fenced' };
    return { kind: 'record-stopped', reason: container.exit?.reason ?? 'exited' };
  }
  return { kind: 'in-line' };
}

