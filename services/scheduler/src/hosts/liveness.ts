import type { CapacityReport, HostRecord, HostState, HostStateEvent } from '@ferry/protocol';

export interface LivenessThresholds {
  /** silent longer than this: suspect */
  suspectAfterMs: number;
  /** silent longer than this: down */
  downAfterMs: number;
}

export function stateForSilence(silentMs: number, thresholds: LivenessThresholds): HostState {
  if (silentMs > thresholds.downAfterMs) return 'down';
  if (silentMs > thresholds.suspectAfterMs) return 'suspect';
  return 'up';
}

export interface ReportOutcome {
  record: HostRecord;
  event: HostStateEvent | null;
}

/**
 * Every known host and its liveness, decided from report age by the scheduler's own clock.
 * Pure: the caller passes `now`, persists records and publishes events.
 */
export class HostTable {
  private readonly hosts = new Map<string, HostRecord>();
  /**
   * Silence is only counted from when this table started listening: a scheduler that was itself
   * away must not declare every host down before they had a chance to report.
   */
  private listeningSince = 0;

  constructor(private readonly thresholds: LivenessThresholds) {}

  /** Restores records persisted by an earlier run; their state is re-decided on later ticks. */
  load(records: Iterable<HostRecord>, now: number): void {
    this.listeningSince = now;
    for (const record of records) this.hosts.set(record.id, record);
  }

  get(id: string): HostRecord | undefined {
    return this.hosts.get(id);
  }

  all(): HostRecord[] {
    return [...this.hosts.values()];
  }

  onReport(report: CapacityReport, now: number): ReportOutcome {
    const previous = this.hosts.get(report.hostId);
    const record: HostRecord = {
      id: report.hostId,
      state: 'up',
      stateSince: previous?.state === 'up' ? previous.stateSince : now,
      firstSeenAt: previous?.firstSeenAt ?? now,
      lastReportAt: now,
      capacity: report,
    };
    this.hosts.set(record.id, record);
    const event: HostStateEvent | null =
      previous?.state === 'up'
        ? null
        : {
            type: 'host.state',
            hostId: record.id,
            from: previous?.state ?? null,
            to: 'up',
            at: now,
            silentForMs: previous ? Math.max(0, now - previous.lastReportAt) : 0,
          };
    return { record, event };
  }

  /** Re-decides every host's state from its silence; returns the changed records and their events. */
  tick(now: number): ReportOutcome[] {
    const changes: ReportOutcome[] = [];
    for (const record of this.hosts.values()) {
      const silentForMs = Math.max(0, now - Math.max(record.lastReportAt, this.listeningSince));
      const state = stateForSilence(silentForMs, this.thresholds);
      if (state === record.state) continue;
      const updated: HostRecord = { ...record, state, stateSince: now };
      this.hosts.set(record.id, updated);
      changes.push({
        record: updated,
        event: { type: 'host.state', hostId: record.id, from: record.state, to: state, at: now, silentForMs },
      });
    }
    return changes;
  }
}
