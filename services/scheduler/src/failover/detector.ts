import type { Queue } from 'bullmq';
import { haWorkloadsOf, type ClusterSnapshot } from '@ferry/core';
import type { FailoverJobData, FailoverRecord } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import type { ClusterStore } from '@ferry/store';
import type { LeaderElection } from '../leader.ts';
import type { DeferredSteps } from '../migrations/deferred.ts';

/** A failover retries until every restart is done or placed nowhere (its host returning ends it too). */
/** how long a down host found with nothing to restart is left alone */
const RECHECK_MS = 30_000;
const FAILOVER_JOB = { attempts: 100_000, backoff: { type: 'fixed', delay: 1000 }, removeOnComplete: { age: 7 * 24 * 3600 } };

/**
 * On the leader, every tick: each host that is down and still owns HA workloads gets one failover
 * (id from the host and when it went down, so a new leader finds the same one and BullMQ's job id
 * keeps it single). Working from the stored host states, not from events, means a leader that
 * takes over mid-way misses nothing. A failover whose job is gone (failed for good, or lost with
 * Redis' data) is queued again; migration steps deferred while a host was down run once it is up.
 */
export class FailoverDetector {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private again = false;
  /**
   * down hosts (with when they went down, and when looked at) found holding no HA workload: nothing
   * is placed on a down host, so they are looked at again only every RECHECK_MS (a record written
   * just after the read, e.g. a migration's commit to it, is then still found)
   */
  private readonly nothingToRestart = new Map<string, { since: number; at: number }>();

  constructor(
    private readonly store: ClusterStore,
    private readonly queue: Queue,
    private readonly leader: LeaderElection,
    private readonly everyMs: number,
    private readonly deferred: DeferredSteps,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Looks now rather than at the next tick (a host was just declared down). */
  wake(): void {
    if (this.busy) this.again = true;
    else void this.tick();
  }

  private async tick(): Promise<void> {
    if (this.busy || !this.leader.isLeader()) return;
    this.busy = true;
    this.again = false;
    try {
      // the down hosts every tick (matched inside Redis: only they are read and parsed); every
      // workload only when one is down without its failover (a whole-cluster read each second
      // cost a third of a core at 1,000 hosts and 5,000 workloads)
      const hosts = (await this.store.hosts.allContaining('"state":"down"')).filter((h) => h.state === 'down');
      const failovers = await this.store.failovers.all();
      for (const failover of failovers.filter((f) => f.state === 'running')) {
        const state = await this.queue.getJobState(failover.id);
        if (state === 'failed') await (await this.queue.getJob(failover.id))?.retry('failed');
        else if (state === 'unknown') await this.queue.add('failover', { failoverId: failover.id } satisfies FailoverJobData, { jobId: failover.id, ...FAILOVER_JOB });
      }
      await this.deferred.runDue();
      // One failover per death: every replica declares the host down by its own clock and writes
      // the host record, so `stateSince` (and the id made of it) can change under a failover
      // already running — a failover detected after the host's last report is of this silence.
      const now = Date.now();
      for (const [hostId, seen] of this.nothingToRestart) {
        const still = hosts.some((h) => h.id === hostId && h.state === 'down' && h.stateSince === seen.since);
        if (!still || now - seen.at > RECHECK_MS) this.nothingToRestart.delete(hostId);
      }
      const dead = hosts.filter((h) => h.state === 'down' && !this.nothingToRestart.has(h.id) && !failovers.some((f) => f.hostId === h.id && f.detectedAt > h.lastReportAt));
      if (dead.length === 0) return;
      const snapshot: ClusterSnapshot = { hosts, workloads: await this.store.workloads.all() };
      for (const host of dead) {
        const ha = haWorkloadsOf(snapshot, host.id);
        if (ha.length === 0) {
          this.nothingToRestart.set(host.id, { since: host.stateSince, at: now });
          continue;
        }
        const id = `f-${host.id}-${host.stateSince.toString(36)}`;
        if (await this.store.failovers.get(id)) continue;
        const record: FailoverRecord = {
          id,
          hostId: host.id,
          state: 'running',
          detectedAt: host.stateSince,
          startedAt: now,
          finishedAt: null,
          restarts: ha.map((w) => ({ workload: w.spec.id, priority: w.spec.ha.priority, to: null, epoch: null, status: 'pending', reason: 'waiting', at: null })),
          unrecoverable: [],
          unprotected: snapshot.workloads.filter((w) => w.hostId === host.id && !w.spec.ha.enabled).map((w) => w.spec.id),
        };
        if (!(await this.store.failovers.insert(id, record))) continue;
        const data: FailoverJobData = { failoverId: id };
        await this.queue.add('failover', data, { jobId: id, ...FAILOVER_JOB });
        this.log.warn({ hostId: host.id, failoverId: id, workloads: ha.map((w) => w.spec.id) }, 'host is down: restarting its HA workloads elsewhere');
        await this.store.addHistory(host.id, { at: now, kind: 'failover', message: `failover ${id}: ${ha.length} HA workload(s) to restart elsewhere`, data: { failoverId: id } });
      }
    } catch (err) {
      this.log.error({ err }, 'failover detection failed');
    } finally {
      this.busy = false;
      if (this.again) void this.tick();
    }
  }
}
