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
  | { kind: 'record-stopped'; reason: string }
  /** no record, and the copy is stamped with an earlier cluster generation: Redis lost its data; rebuild the record from this copy */
  | { kind: 'adopt' }
  /**
   * the record was rebuilt from another host's copy after the loss and has not moved since, and
   * this copy (also from before the loss) is newer: it becomes the record's; the other is then discarded
   */
  | { kind: 'take-over'; why: string };

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

/** The cluster generation the records belong to (see ClusterGeneration): its id and when it began. */
export interface GenerationView {
  id: string;
  since: number;
}

export interface CopyVerdict {
  decision: CopyDecision;
  /** the record accepts this copy as its own but the copy is not stamped with this generation: stamp it */
  stamp: boolean;
}

/**
 * After a loss, copies that are not running are adopted only once every host had time to report
 * (a running copy elsewhere, or a newer one, wins without a fight); running ones at once.
 */
export const RECOVERY_HOLD_MS = 10_000;

/**
 * decideCopy, aware of cluster generations: what tells "Redis lost its data" apart from "this
 * workload was deleted while its host was away". Both leave a copy without a record; only the
 * first leaves one stamped with an earlier generation (the stamp is written when the cluster's
 * records confirm a copy, and a loss of Redis' data starts a new generation). So:
 * - no record, stamped with another generation → adopt (rebuild the record from it), never discard;
 *   one that is not running waits RECOVERY_HOLD_MS after the generation began;
 * - no record, stamped with this generation or not at all → a stray, as before (discarded when a
 *   delete left a note for it);
 * - two hosts with copies from before the loss: the higher epoch wins (take-over while the record
 *   is as rebuilt), the other is discarded as any copy the record does not own.
 */
export function reviewCopy(hostId: string, container: ContainerStatus, record: WorkloadRecord | null, generation: GenerationView | null, now: number, holdMs = RECOVERY_HOLD_MS): CopyVerdict {
  const earlier = generation !== null && container.generation !== undefined && container.generation !== generation.id;
  if (!record) {
    if (!earlier) return { decision: { kind: 'stray' }, stamp: false };
    if (container.state !== 'running' && now - generation.since < holdMs) return { decision: { kind: 'in-line' }, stamp: false };
    return { decision: { kind: 'adopt' }, stamp: false };
  }
  const rebuilt = record.recovered;
  if (
    earlier &&
    rebuilt &&
    rebuilt.generation === generation.id &&
    rebuilt.from === record.hostId &&
    rebuilt.epoch === record.epoch &&
    record.hostId !== hostId &&
    record.migratingTo === null &&
    container.epoch > record.epoch
  ) {
    return { decision: { kind: 'take-over', why: `copy on ${hostId} at epoch ${container.epoch} is newer than the one rebuilt from ${record.hostId} (epoch ${record.epoch})` }, stamp: false };
  }
  const decision = decideCopy(hostId, container, record);
  const stamp = generation !== null && container.generation !== generation.id && decision.kind !== 'discard' && decision.kind !== 'stray';
  return { decision, stamp };
}

/** The workload record rebuilt from a host's copy after the cluster state was lost (pure). */
export function rebuiltRecord(hostId: string, copy: ContainerStatus & { spec: WorkloadRecord['spec'] }, generation: string, cpu: WorkloadRecord['cpu'], now: number): WorkloadRecord {
  const running = copy.state === 'running' || copy.state === 'frozen' || copy.state === 'migrating';
  // a copy fencing stopped was meant to run: the reconciler starts it again (restart-fenced)
  const desired = running || copy.exit?.reason === 'fenced' ? 'running' : 'stopped';
  return {
    spec: copy.spec,
    hostId,
    epoch: copy.epoch,
    desired,
    phase: running || copy.exit?.reason === 'fenced' ? 'running' : 'stopped',
    placement: { hostId, reason: `rebuilt from host ${hostId} after the cluster state was lost`, refused: {} },
    lastExit: copy.exit,
    error: null,
    lastJob: null,
    migratingTo: null,
    cpu,
    recovered: { at: now, from: hostId, epoch: copy.epoch, generation },
    createdAt: now,
    updatedAt: now,
  };
}
