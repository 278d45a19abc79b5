import type { CapacityReport, HostRecord, HostState, HostStateEvent } from '@ferry/protocol';
import { keepUnchanged } from '@ferry/core';

export interface LivenessThresholds {
  /** silent longer than this: suspect */
  suspectAfterMs: number;
  /** silent longer than this: down */
  downAfterMs: number;
  /**
   * a host whose storage heartbeat one of its peers saw change within this is alive on storage
   * (default: never — without the storage channel, silence alone decides). Above the lease plus
   * the fence guard's grace: a host that lost both channels has fenced by then.
   */
  storageStaleMs?: number;
  /** the table's own ticks further apart than this: the scheduler itself was away (stopped, starved) */
  stallAfterMs?: number;
}

/** While no host at all is heard, a host is declared down only after this many down-after periods. */
export const GLOBAL_SILENCE_FACTOR = 4;

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
  private lastTickAt: number | null = null;

  constructor(private readonly thresholds: LivenessThresholds) {}

  /**
   * Whether a peer that is up sees `host`'s storage heartbeat change recently: the freshest
   * evidence, aged by how long ago that peer's report arrived (the scheduler's clock).
   */
  private aliveOnStorage(host: HostRecord, now: number): boolean {
    const staleMs = this.thresholds.storageStaleMs;
    if (staleMs === undefined) return false;
    for (const peer of this.hosts.values()) {
      if (peer.id === host.id || peer.state !== 'up' || now - peer.lastReportAt > this.thresholds.suspectAfterMs) continue;
      for (const seen of peer.capacity.storage?.peers ?? []) {
        if (seen.hostId === host.id && !seen.fenced && seen.unchangedForMs + (now - peer.lastReportAt) < staleMs) return true;
      }
    }
    return false;
  }

  /** Restores records persisted by an earlier run; their state is re-decided on later ticks. */
  load(records: Iterable<HostRecord>, now: number): void {
    this.listeningSince = now;
    this.lastTickAt = now; // a stall right after the start counts as one too

    for (const record of records) this.hosts.set(record.id, record);
  }

  get(id: string): HostRecord | undefined {
    return this.hosts.get(id);
  }

  all(): HostRecord[] {
    return [...this.hosts.values()];
  }

  onReport(fresh: CapacityReport, now: number): ReportOutcome {
    const previous = this.hosts.get(fresh.hostId);
    const report = previous ? keepUnchanged(previous.capacity, fresh) : fresh;
    const record: HostRecord = {
      id: report.hostId,
      state: 'up',
      stateSince: previous?.state === 'up' ? previous.stateSince : now,
      firstSeenAt: previous?.firstSeenAt ?? now,
      lastReportAt: now,
      capacity: report,
      isolated: false,
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

  /**
   * Re-decides every host's state from its silence; returns the changed records and their events.
   * Silence alone does not make a host down (docs/failover.md, "Isolation is not failure"):
   * - the scheduler's own stall (its ticks far apart: stopped, starved) restarts the count, like a
   *   restart of the scheduler does;
   * - while no host at all is heard (NATS is down, or this scheduler is cut off), hosts go down
   *   only after GLOBAL_SILENCE_FACTOR down-after periods;
   * - a host whose peers see its storage heartbeat change stays suspect, marked isolated.
   */
  tick(now: number): ReportOutcome[] {
    const changes: ReportOutcome[] = [];
    const stallMs = this.thresholds.stallAfterMs;
    if (stallMs !== undefined && this.lastTickAt !== null && now - this.lastTickAt > stallMs) this.listeningSince = now;
    this.lastTickAt = now;
    let heardAt = this.listeningSince;
    for (const record of this.hosts.values()) heardAt = Math.max(heardAt, record.lastReportAt);
    const globalSilence = now - heardAt > this.thresholds.suspectAfterMs;
    for (const record of this.hosts.values()) {
      const silentForMs = Math.max(0, now - Math.max(record.lastReportAt, this.listeningSince));
      let state = stateForSilence(silentForMs, this.thresholds);
      let isolated = false;
      if (state === 'down' && globalSilence && silentForMs <= GLOBAL_SILENCE_FACTOR * this.thresholds.downAfterMs) state = record.state === 'down' ? 'down' : 'suspect';
      if (state === 'down' && record.state !== 'down' && this.aliveOnStorage(record, now)) {
        state = 'suspect';
        isolated = true;
      }
      if (state === record.state) {
        if ((record.isolated ?? false) !== isolated && state !== 'down') {
          const updated: HostRecord = { ...record, isolated };
          this.hosts.set(record.id, updated);
          changes.push({ record: updated, event: null });
        }
        continue;
      }
      const updated: HostRecord = { ...record, state, stateSince: now, isolated };
      this.hosts.set(record.id, updated);
      changes.push({
        record: updated,
        event: { type: 'host.state', hostId: record.id, from: record.state, to: state, at: now, silentForMs },
      });
    }
    return changes;
  }
}

/** kept here for the host table's callers; the one definition is core's (the API's host copy keeps unchanged arrays too) */
export { keepUnchanged };
