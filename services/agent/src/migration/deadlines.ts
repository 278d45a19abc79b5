import type { Logger } from '@ferry/runtime';
import { isAlive, stopProcess } from './processes.ts';
import type { MigrationSide, MigrationSides, ProcessRef } from './state.ts';

export interface MigrationDeadlinesOptions {
  sides: MigrationSides;
  /** how long after its prepare a side's daemons may live */
  deadlineMs: number;
  /** runs `work` under the workload's mutex (the one prepare, restore and abort take) */
  exclusive: <T>(workloadId: string, work: () => Promise<T>) => Promise<T>;
  log: Logger;
  now?: () => number;
}

/** The daemons of a side that its deadline ends, by the field that records each. */
type DaemonField = 'rsyncd' | 'pageServer' | 'lazyDaemon';

/**
 * Daemons a side past its deadline must lose. The rsync daemon (root, read-write) and the page
 * server only ever serve the copy before the restore. The lazy-pages daemon is different once the
 * restore ran: the restored workload faults its missing pages in through it, so stopping it would
 * break a running workload; it exits by itself when the last page arrived.
 */
export function overdueDaemons(side: MigrationSide): DaemonField[] {
  if (side.role !== 'destination') return [];
  const fields: DaemonField[] = side.restored ? ['rsyncd', 'pageServer'] : ['rsyncd', 'pageServer', 'lazyDaemon'];
  return fields.filter((field) => side[field] !== null);
}

/**
 * A deadline for every migration side's daemons, kept by the agent whatever the scheduler does: a
 * scheduler that never sends the finish or abort (lost request, migration stuck, scheduler gone)
 * must not leave a root rsync daemon or a page server listening. Past its deadline a side only
 * loses its daemons: staging, namespace and a restored container stay for the finish or abort
 * that the scheduler (or its deferred steps) still owes; a running restored workload is never
 * touched here.
 */
export class MigrationDeadlines {
  private timer: NodeJS.Timeout | undefined;
  private sweeping: Promise<string[]> | null = null;
  private readonly now: () => number;

  constructor(private readonly o: MigrationDeadlinesOptions) {
    this.now = o.now ?? Date.now;
  }

  /** The deadline of a side prepared now (wall clock: it must hold across agent restarts). */
  fromNow(): number {
    return this.now() + this.o.deadlineMs;
  }

  /** Sweeps now (sides left from before this agent started), then every `everyMs`. */
  watch(everyMs = Math.min(30_000, Math.max(200, Math.floor(this.o.deadlineMs / 4)))): void {
    if (this.timer) return;
    const tick = () => void this.sweep().catch((err: unknown) => this.o.log.error({ err }, 'migration deadline sweep failed'));
    tick();
    this.timer = setInterval(tick, everyMs);
    this.timer.unref();
  }

  unwatch(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops the daemons of every side past its deadline; returns the migrations that lost some. */
  sweep(): Promise<string[]> {
    // one sweep at a time: a slow stop must not overlap the next tick's
    this.sweeping ??= this.sweepOnce().finally(() => (this.sweeping = null));
    return this.sweeping;
  }

  private async sweepOnce(): Promise<string[]> {
    const stopped: string[] = [];
    for (const listed of await this.o.sides.all()) {
      if (listed.deadlineAt === null) {
        // written by an agent without deadlines: the deadline starts now
        await this.o.exclusive(listed.workloadId, async () => {
          const side = await this.o.sides.load(listed.migrationId);
          if (side && side.deadlineAt === null) await this.o.sides.save({ ...side, deadlineAt: this.fromNow() });
        });
        continue;
      }
      if (this.now() < listed.deadlineAt || overdueDaemons(listed).length === 0) continue;
      const ended = await this.o.exclusive(listed.workloadId, async () => {
        // read again under the mutex: a finish, abort or restore may have changed it meanwhile
        const side = await this.o.sides.load(listed.migrationId);
        if (!side || side.deadlineAt === null || this.now() < side.deadlineAt) return false;
        const fields = overdueDaemons(side);
        if (fields.length === 0) return false;
        const alive = fields.filter((field) => isAlive(side[field]));
        await Promise.all(fields.map((field) => stopProcess(side[field] as ProcessRef | null)));
        const cleared = Object.fromEntries(fields.map((field) => [field, null])) as Partial<MigrationSide>;
        await this.o.sides.save({ ...side, ...cleared });
        this.o.log.warn(
          { migrationId: side.migrationId, workload: side.workloadId, stopped: alive, restored: side.restored, overdueMs: this.now() - side.deadlineAt },
          'migration past its deadline: its daemons stopped (the scheduler never finished or aborted it)',
        );
        return true;
      });
      if (ended) stopped.push(listed.migrationId);
    }
    return stopped;
  }
}
