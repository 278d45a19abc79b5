import { join } from 'node:path';
import type { AgentStepTime, MigrationProgressEvent } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import type { Criu } from '../containers/criu.ts';
import type { MigrationHost } from './common.ts';
import { MigrationDeadlines } from './deadlines.ts';
import { MigrationDestination, type DestinationContainers, type PrepareRequest, type RestoreRequest } from './destination.ts';
import { LinkCounter } from './host-traffic.ts';
import { MigrationSource, type CopyRequest, type DumpRequest, type ResumeRequest, type SourceContainers } from './source.ts';
import { MigrationSides } from './state.ts';

export interface MigrationManagerOptions {
  hostId: string;
  /** this host's transfer address */
  address: string | null;
  dataDir: string;
  /** the configured CRIU (page servers, lazy-pages daemons; runc has the same one) */
  criu: Criu;
  /** how long a side's daemons may live after its prepare (MigrationDeadlines) */
  daemonDeadlineMs: number;
  /** the container manager, seen through what each half needs of it */
  containers: DestinationContainers & SourceContainers;
  log: Logger;
}

/**
 * This host's part in live migrations: routes each `migration.*` command to the half that runs
 * it — the source (presync, dump, transfer, resume, the source's finish) or the destination
 * (prepare, restore, abort, the destination's finish) — and keeps what both share: the side
 * files and the daemons' deadlines.
 */
export class MigrationManager {
  readonly source: MigrationSource;
  readonly destination: MigrationDestination;
  private readonly sides: MigrationSides;
  private readonly deadlines: MigrationDeadlines;

  /** told of copy progress (the agent publishes it as migration events) */
  onProgress: (event: MigrationProgressEvent) => void = () => undefined;

  constructor(o: MigrationManagerOptions) {
    this.sides = new MigrationSides(join(o.dataDir, 'migrations'));
    const host: MigrationHost = { hostId: o.hostId, address: o.address, sides: this.sides, log: o.log };
    this.deadlines = new MigrationDeadlines({
      sides: this.sides,
      deadlineMs: o.daemonDeadlineMs,
      exclusive: (workloadId, work) => o.containers.exclusive(workloadId, work),
      log: o.log,
    });
    this.source = new MigrationSource({ ...host, containers: o.containers, traffic: new LinkCounter(o.address), progress: (event) => this.onProgress(event) });
    this.destination = new MigrationDestination({ ...host, containers: o.containers, criu: o.criu, deadlineFromNow: () => this.deadlines.fromNow() });
  }

  /** Enforces every side's daemon deadline: now (sides from before this agent) and periodically. */
  watchDeadlines(): void {
    this.deadlines.watch();
  }

  unwatchDeadlines(): void {
    this.deadlines.unwatch();
  }

  // ---- destination ----
  prepare = (req: PrepareRequest) => this.destination.prepare(req);
  restore = (req: RestoreRequest) => this.destination.restore(req);
  abort = (migrationId: string) => this.destination.abort(migrationId);

  // ---- source ----
  presync = (req: CopyRequest) => this.source.presync(req);
  dump = (req: DumpRequest) => this.source.dump(req);
  transfer = (req: CopyRequest) => this.source.transfer(req);
  resume = (req: ResumeRequest) => this.source.resume(req);
  abandonPages = (migrationId: string) => this.source.abandonPages(migrationId);

  /** After the commit, on either side. */
  finish(migrationId: string, role: 'source' | 'destination'): Promise<{ done: boolean; note?: string; lazyBytes?: number; lazyMs?: number; steps?: AgentStepTime[] }> {
    return role === 'source' ? this.source.finish(migrationId) : this.destination.finish(migrationId);
  }

  /**
   * Ends every migration this host takes part in (decommissioning, lab teardown): daemons and lazy
   * dumps stopped, destination leftovers removed. Source workloads are left as they are.
   */
  async abandonAll(): Promise<number> {
    const sides = await this.sides.all();
    for (const side of sides) {
      if (side.role === 'destination') await this.destination.abort(side.migrationId);
      else await this.source.abandon(side);
    }
    return sides.length;
  }
}
