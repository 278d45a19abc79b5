import type { NatsConnection, Subscription } from 'nats';
import { subjects, type CapacityReport, type FenceEvent, type HostRecord, type HostStateEvent, type LeaseAck, type SupersededCopy } from '@ferry/protocol';
import { encodeJson, type Logger } from '@ferry/runtime';
import type { ClusterStore } from '@ferry/store';
import type { SchedulerConfig } from '../config.ts';
import { HostTable } from '../hosts/liveness.ts';
import { parseCapacityMessage } from './intake.ts';
import { PerKeyLimiter } from './log-limiter.ts';
import { CapacityCounters } from './stats.ts';
import type { SchedulerMetrics } from '../metrics.ts';

/**
 * Capacity intake and host liveness: validates every report, keeps the host table, persists
 * records and counters to Redis in batches, and publishes state changes on ferry.events.hosts.
 */
export class CapacityService {
  private readonly table: HostTable;
  private readonly listeners: Array<(report: CapacityReport) => void> = [];
  private readonly stateListeners: Array<(event: HostStateEvent) => void> = [];
  private readonly counters = new CapacityCounters();
  private readonly rejectLog: PerKeyLimiter;
  private readonly dirty = new Map<string, HostRecord>();
  private subscription: Subscription | undefined;
  private timers: NodeJS.Timeout[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private supersededOn: (hostId: string) => SupersededCopy[] = () => [];
  private dropsReportOf: (hostId: string) => boolean = () => false;

  constructor(
    private readonly config: SchedulerConfig,
    private readonly nc: NatsConnection,
    private readonly store: ClusterStore,
    private readonly log: Logger,
    private readonly metrics?: SchedulerMetrics,
  ) {
    this.table = new HostTable({
      suspectAfterMs: config.suspectAfterMs,
      downAfterMs: config.downAfterMs,
      // a host that lost both channels fenced a lease (plus the guard's grace) after its last
      // heartbeat; one second more and its heartbeat's silence proves it (docs/failover.md)
      storageStaleMs: config.leaseMs + 1000,
      // liveness ticks every livenessCheckMs: ticks this far apart mean the scheduler was away
      stallAfterMs: Math.max(2000, config.livenessCheckMs * 8),
    });
    this.rejectLog = new PerKeyLimiter(config.rejectLogWindowMs);
  }

  hosts(): HostRecord[] {
    return this.table.all();
  }

  /**
   * Which run of a host's agent reports now (its pid and start time), from the last report this
   * replica heard; null before the first. A request in flight to an agent whose run changed died
   * with the old one (AgentClient).
   */
  agentRun(hostId: string): string | null {
    const agent = this.table.get(hostId)?.capacity.agent;
    return agent ? `${agent.pid}@${agent.startedAt}` : null;
  }

  /** Called with every host state change this replica decides. */
  onStateChange(listener: (event: HostStateEvent) => void): void {
    this.stateListeners.push(listener);
  }

  /** Where lease acknowledgements learn which of a host's copies it must stop (the reconciler). */
  acknowledgeWith(supersededOn: (hostId: string) => SupersededCopy[]): void {
    this.supersededOn = supersededOn;
  }

  /** Reports of hosts for which `drops` is true (removed hosts) are dropped: no lease, no record. */
  dropReportsWith(drops: (hostId: string) => boolean): void {
    this.dropsReportOf = drops;
  }

  /** Called with every accepted report (after the host table took it). */
  onReport(listener: (report: CapacityReport) => void): void {
    this.listeners.push(listener);
  }

  async start(): Promise<void> {
    this.table.load(await this.store.hosts.all(), Date.now());
    this.subscription = this.nc.subscribe(subjects.capacityAll, {
      callback: (err, msg) => {
        if (err) {
          this.log.error({ err }, 'capacity subscription error');
          return;
        }
        this.receive(msg.subject, msg.data, msg.reply);
      },
    });
    this.timers.push(setInterval(() => this.checkLiveness(), this.config.livenessCheckMs));
    this.timers.push(setInterval(() => void this.flush(), this.config.flushMs));
  }

  /** Never throws: a bad message is counted and (rate-limited) logged, nothing else. */
  private receive(subject: string, data: Uint8Array, reply?: string): void {
    const now = Date.now();
    const result = parseCapacityMessage(subject, data, (hostId) => this.table.get(hostId)?.capacity);
    if (!result.ok) {
      this.counters.rejected(result.reason);
      this.metrics?.reports.inc({ result: 'rejected', reason: result.reason });
      const key = result.hostId ?? '(bad subject)';
      if (this.rejectLog.allow(key, now)) {
        this.log.warn({ hostId: result.hostId, reason: result.reason, detail: result.detail }, 'capacity report rejected (further rejections for this host are not logged for a while)');
      }
      return;
    }
    if (this.dropsReportOf(result.report.hostId)) return;
    this.counters.accepted();
    this.metrics?.reports.inc({ result: 'accepted', reason: '' });
    const report = result.report;
    // Renew the host's lease — only on its own lease subject, whatever reply address came along.
    if (reply === subjects.lease(report.hostId)) {
      const ack: LeaseAck = { seq: report.seq, leaseMs: this.config.leaseMs, superseded: this.supersededOn(report.hostId) };
      this.nc.publish(reply, encodeJson(ack));
    }
    const { record, event } = this.table.onReport(report, now);
    this.dirty.set(record.id, record);
    if (event) this.publishEvent(event);
    for (const fence of report.fencing) void this.recordFencing(report.hostId, fence);
    for (const listener of this.listeners) listener(report);
  }

  private async recordFencing(hostId: string, fence: FenceEvent): Promise<void> {
    try {
      if (!(await this.store.firstSight(`fence:${hostId}:${fence.id}`))) return;
      this.log.warn({ hostId, ...fence }, 'host reports it fenced itself');
      this.metrics?.fencing.inc({ by: fence.by });
      await this.store.addHistory(hostId, {
        at: fence.at,
        kind: 'fencing',
        message: `lease expired ${Math.round(fence.lateMs)} ms ago: ${fence.by === 'guard' ? 'the fence guard (no agent running)' : 'the agent'} ${fence.action === 'stop' ? 'stopped' : 'froze'} ${fence.containers.length} HA container(s)`,
        data: fence,
      });
    } catch (err) {
      this.log.error({ err }, 'recording a fencing report failed');
    }
  }

  private checkLiveness(): void {
    for (const { record, event } of this.table.tick(Date.now())) {
      this.dirty.set(record.id, record);
      if (event) this.publishEvent(event);
      if (record.isolated && (!event || event.to === 'suspect')) this.noteIsolated(record);
    }
  }

  private noteIsolated(record: HostRecord): void {
    this.log.warn({ hostId: record.id }, 'host silent on the control plane but alive on storage: isolated, not failed (its workloads stay where they are)');
    void this.store
      .addHistory(record.id, {
        at: Date.now(),
        kind: 'state',
        message: 'isolated: silent on the control plane, but its peers see its storage heartbeat: not declared down, nothing restarted elsewhere',
      })
      .catch((err: unknown) => this.log.error({ err }, 'recording host history failed'));
  }

  private publishEvent(event: HostStateEvent): void {
    const level = event.to === 'up' ? 'info' : 'warn';
    this.log[level]({ hostId: event.hostId, from: event.from, to: event.to, silentForMs: event.silentForMs }, 'host state changed');
    this.nc.publish(subjects.hostEvents, encodeJson(event));
    for (const listener of this.stateListeners) listener(event);
    void this.store
      .addHistory(event.hostId, { at: event.at, kind: 'state', message: `${event.from ?? 'new'} → ${event.to} (silent ${event.silentForMs} ms)`, data: event })
      .catch((err: unknown) => this.log.error({ err }, 'recording host history failed'));
  }

  /** One pipeline per period for all changed records and counters; failures are retried next period. */
  private flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const records = [...this.dirty.values()];
      this.dirty.clear();
      const counts = this.counters.take();
      try {
        await this.store.hosts.putMany(records.map((r) => [r.id, r]));
        await this.store.addCapacityCounts(counts);
      } catch (err) {
        for (const record of records) if (!this.dirty.has(record.id)) this.dirty.set(record.id, record);
        this.counters.restore(counts);
        this.log.error({ err }, 'writing host records to Redis failed; will retry');
      }
    });
    return this.flushing;
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.subscription?.unsubscribe();
    await this.flush();
  }
}
