import type { Logger } from '@ferry/runtime';
import type { ClusterStore } from '@ferry/store';
import { PerKeyLimiter } from '../capacity/log-limiter.ts';

/**
 * The hosts an operator removed (DELETE /v1/hosts/:id), as this replica last read them: reports
 * from these are dropped (no lease acknowledgement, no host record, no reconciliation) until the
 * host is admitted again. Read from Redis every `refreshMs`; a report that arrives in the moment
 * between a removal and the next refresh is still taken, which only delays the drop.
 */
export class RemovedHosts {
  private removed = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly dropLog: PerKeyLimiter;

  constructor(
    private readonly store: ClusterStore,
    private readonly log: Logger,
    private readonly refreshMs = 1_000,
    logWindowMs = 60_000,
  ) {
    this.dropLog = new PerKeyLimiter(logWindowMs);
  }

  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    try {
      this.removed = new Set((await this.store.removedHosts.all()).map((r) => r.hostId));
    } catch (err) {
      this.log.error({ err }, 'reading the removed hosts failed; keeping the last list');
    }
  }

  has(hostId: string): boolean {
    return this.removed.has(hostId);
  }

  /** True (and logged, at most once a minute per host) when a report of `hostId` must be dropped. */
  dropsReportOf(hostId: string): boolean {
    if (!this.removed.has(hostId)) return false;
    if (this.dropLog.allow(hostId, Date.now())) {
      this.log.warn({ hostId }, 'report from a removed host dropped (POST /v1/hosts/:id/admit lets it back); further drops are not logged for a while');
    }
    return true;
  }
}
