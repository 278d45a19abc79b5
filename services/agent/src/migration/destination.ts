import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { AgentStepTime, MigrationStrategy, PrepareMigrationResult, RestoreResult, WorkloadSpec } from '@ferry/protocol';
import { freePort } from '@ferry/runtime';
import type { Criu } from '../containers/criu.ts';
import { CommandError } from '../containers/errors.ts';
import { announce, planNetwork, setHostSide, setUpNetwork, tearDownNetwork } from '../containers/network.ts';
import { diskLimitBytes, type RootfsStore } from '../containers/rootfs.ts';
import type { Template } from '../containers/templates.ts';
import type { Runc } from '../containers/runc.ts';
import { consoleLogFile } from '../logs/console-log.ts';
import { containerDir, criuLogTail, namespaceExists, planFor, rearmTimers, requireAddress, requireSide, undoFailed, type MigrationHost } from './common.ts';
import type { ContainerAccess } from '../containers/access.ts';
import { ref, stopProcess } from './processes.ts';
import { parseRestoreStats, readCriuStats } from './criu-stats.ts';
import { Reverter } from './reverter.ts';
import { StepTimer } from './step-timer.ts';
import { RsyncDaemon } from './rsync.ts';
import { newSide, type MigrationSide } from './state.ts';
import { createMigrationTls, criuTlsArgs } from './tls.ts';

/** Exactly what the destination half uses of the container manager (ContainerManager has it all). */
export interface DestinationContainers extends ContainerAccess {
  readonly runc: Pick<Runc, 'state' | 'hasState' | 'delete' | 'detached'>;
  /** prefix of the network namespaces this host makes */
  readonly netnsPrefix: string;
  writeBundleConfig(spec: WorkloadSpec, rootfs: string, netns: string): Promise<void>;
  /** root filesystems in the pools (a copy-on-write pool receives into a snapshot of the template, with the quota set) */
  readonly roots: Pick<RootfsStore, 'receive' | 'removeContainerDir'>;
  template(name: string): Template | undefined;
}

export interface MigrationDestinationOptions extends MigrationHost {
  containers: DestinationContainers;
  /** the configured CRIU: page servers and lazy-pages daemons */
  criu: Criu;
  /** the daemon deadline of a side prepared now (MigrationDeadlines) */
  deadlineFromNow: () => number;
}

export interface PrepareRequest {
  migrationId: string;
  spec: WorkloadSpec;
  epoch: number;
  strategy: MigrationStrategy;
  source: { hostId: string; address: string };
  secret: string;
  sharedRootfs: boolean;
}

export interface RestoreRequest {
  migrationId: string;
  strategy: MigrationStrategy;
  source: { address: string; lazyPagesPort: number | null };
}

/**
 * The receiving half of a migration (Incus' migration sink): prepares everything that can be done
 * before the freeze — staging, the namespace (down), the bundle, a one-time rsync daemon and page
 * server — then restores, and undoes it all on abort or drops its leftovers after the commit.
 * Every command is idempotent per migration id; what it did is in the side file.
 */
export class MigrationDestination {
  private readonly c: DestinationContainers;

  constructor(private readonly o: MigrationDestinationOptions) {
    this.c = o.containers;
  }

  prepare(req: PrepareRequest): Promise<PrepareMigrationResult> {
    const address = requireAddress(this.o);
    const { migrationId, spec } = req;
    return this.c.exclusive(spec.id, () =>
      // A prepare that fails half-way leaves nothing: staging, namespace, bundle and daemons go.
      Reverter.run(
        async (revert) => {
          if (this.c.record(spec.id)) throw new CommandError('CONFLICT', `host ${this.o.hostId} already has a container ${spec.id}`);
          const previous = await this.o.sides.load(migrationId);
          if (previous) await this.stopDaemons(previous); // a retried prepare starts its daemons afresh
          const { dir, shared: claimed } = containerDir(this.o, this.c.pool(spec.pool), spec);
          // the scheduler's probe proof decides; this host's own claim alone never skips a copy
          const shared = claimed && req.sharedRootfs;
          const workDir = this.o.sides.workDir(migrationId);
          const imagesDir = join(dir, `ckpt-${migrationId}`);
          await mkdir(workDir, { recursive: true });
          revert.add(() => this.o.sides.remove(migrationId), 'side file and work directory');
          await mkdir(imagesDir, { recursive: true });
          // on a pool claimed shared the container's directory may be the source's own: only the images go
          revert.add(() => (claimed ? rm(imagesDir, { recursive: true, force: true }) : this.c.roots.removeContainerDir(this.c.pool(spec.pool), dir)), 'staging');
          // The root the copy goes into, with the workload's disk limit set before a byte arrives
          // (a snapshot of this host's copy of the template on a copy-on-write pool).
          const rootfsBase = claimed ? null : await this.c.roots.receive(this.c.pool(spec.pool)!, this.c.template(spec.template), spec.id, diskLimitBytes(spec));

          // The namespace now, with the same address and MAC, bridged but down until the restore:
          // nothing of it remains to do while the workload is frozen.
          const netns = previous?.netns ?? `${this.c.netnsPrefix}-${spec.id}-${randomBytes(4).toString('hex')}`;
          const side = newSide({
            migrationId,
            role: 'destination',
            workloadId: spec.id,
            strategy: req.strategy,
            containerDir: dir,
            imagesDir,
            sharedRootfs: shared,
            spec,
            epoch: req.epoch,
            netns,
            sourceAddress: req.source.address,
            // a retried prepare starts its daemons afresh, with a fresh deadline
            deadlineAt: this.o.deadlineFromNow(),
          });
          await this.o.sides.save(side);
          // The namespace, the bundle, the page stream's certificate and the rsync daemon do not
          // depend on each other: made side by side (each is a few process spawns: 5 for the
          // namespace, 1 for openssl, 2+ for the daemon and its readiness probe), and each one
          // made registers its undo even when another one failed.
          const rsyncPort = await freePort(address);
          const [network, bundle, tls, daemon] = await Promise.allSettled([
            (async () => {
              if (!previous?.netns || !(await namespaceExists(netns))) {
                await setUpNetwork(planNetwork(netns, spec.networks, this.c.networks()), { hostSideUp: false });
              }
            })(),
            this.c.writeBundleConfig(spec, join(dir, 'rootfs'), netns),
            createMigrationTls(workDir),
            RsyncDaemon.start({
              dir: workDir,
              address,
              port: rsyncPort,
              user: 'ferry',
              secret: req.secret,
              allowFrom: req.source.address,
              modules: [{ name: 'ct', path: dir }],
            }),
          ]);
          // the side file that names it goes too, so the namespace must (a retry's as well)
          revert.add(() => tearDownNetwork(netns), 'network namespace');
          revert.add(() => (this.c.record(spec.id) ? undefined : rm(this.c.bundle(spec.id).dir, { recursive: true, force: true })), 'bundle');
          if (daemon.status === 'fulfilled') {
            side.rsyncd = ref(daemon.value.pid);
            revert.add(() => stopProcess(side.rsyncd), 'rsync daemon');
          }
          for (const step of [network, bundle, daemon]) if (step.status === 'rejected') throw step.reason;
          if (tls.status === 'rejected') throw tls.reason;
          let pageServerPort: number | null = null;
          // On a shared pool the images directory is the same directory on both hosts: the source
          // dumps its pages straight into it, and a page server here would only break — CRIU opens
          // its images directory when it starts, and the source's dump replaces that directory (new
          // inode), so the server's first write fails (ENOENT) and the dump sees "The page server
          // doesn't answer". No page server then: the source's dump writes them itself.
          if (req.strategy === 'page-server' && !shared) {
            pageServerPort = await freePort(address);
            const pid = await this.o.criu.pageServer({
              imagesDir,
              address,
              port: pageServerPort,
              tlsArgs: criuTlsArgs(workDir),
              pidFile: join(workDir, 'page-server.pid'),
              logFile: join(workDir, 'page-server.log'),
            });
            side.pageServer = ref(pid);
            revert.add(() => stopProcess(side.pageServer), 'page server');
          }
          await this.o.sides.save(side);
          this.o.log.info({ migrationId, workload: spec.id, rsyncPort, pageServerPort, netns }, 'migration destination prepared');
          return { address, rsyncPort, pageServerPort, sharedRootfs: shared, tls: tls.value, rootfsBase };
        },
        undoFailed(this.o.log, migrationId),
      ),
    );
  }

  async restore(req: RestoreRequest): Promise<RestoreResult> {
    const side = await requireSide(this.o, req.migrationId);
    const spec = side.spec!;
    return this.c.exclusive(spec.id, async () => {
      const runc = this.c.runc;
      const bundle = this.c.bundle(spec.id);
      const plan = planFor(side, spec, this.c.networks());
      const workDir = join(this.o.sides.workDir(req.migrationId), `restore-${Date.now()}`);
      await mkdir(workDir, { recursive: true });
      const started = performance.now();
      const timer = new StepTimer();
      // restored already (a copy of the request, or the scheduler asking again): the same answer
      if (side.restored && (await runc.state(spec.id))?.status === 'running') {
        return { restoredAt: Date.now(), restoreMs: 0, status: await this.c.statusOfRecord(this.c.record(spec.id)!) };
      }
      // nothing of this id in runc's state root: no need to ask runc (an exec inside the freeze)
      const stale = !(await runc.hasState(spec.id))
        ? null
        : await runc.state(spec.id).catch((err: unknown) => {
            throw new CommandError('MIGRATION_FAILED', `restore on ${this.o.hostId} failed: unreadable runc state for ${spec.id}: ${(err as Error).message}`);
          });
      if (stale) await runc.delete(spec.id, true);
      if (req.strategy === 'cold') return this.registerCold(side, spec, started);
      timer.lap('stale runc state checked');

      const args = ['restore', '--detach', '--image-path', side.imagesDir, '--work-path', workDir, '--tcp-established', '--bundle', bundle.dir, '--pid-file', bundle.pidFile];
      let lazyDaemon: Promise<void> | null = null;
      if (req.strategy === 'lazy') {
        if (!req.source.lazyPagesPort) throw new CommandError('BAD_REQUEST', 'a lazy restore needs the source page server port');
        // Connects to the source's page server; the restored process faults pages in through it.
        // It starts while the timers are re-armed and the link comes up (all inside the freeze),
        // and the restore waits for it. It stays if the restore fails: the abort of the rollback
        // stops it (after the source resumed), as it does any daemon the side records.
        lazyDaemon = this.o.criu
          .lazyPages({
            source: { address: req.source.address, port: req.source.lazyPagesPort },
            tlsArgs: criuTlsArgs(this.o.sides.workDir(req.migrationId)),
            imagesDir: side.imagesDir,
            workDir,
            pidFile: join(workDir, 'lazy-pages.pid'),
            logFile: 'lazy-pages.log',
          })
          .then(async (pid) => {
            side.lazyDaemon = ref(pid);
            await this.o.sides.save(side);
          });
        lazyDaemon.catch(() => undefined); // awaited below: not an unhandled rejection meanwhile
        args.splice(1, 0, '--lazy-pages');
      }
      await Reverter.run(
        async (revert) => {
          revert.add(() => setHostSide(plan, false), 'host side of the links down');
          // independent: the images' timers and the link, side by side
          await Promise.all([rearmTimers(this.o, req.migrationId, side.imagesDir), setHostSide(plan, true)]);
          timer.lap('timers re-armed in the images, destination link up');
          if (lazyDaemon) {
            await lazyDaemon;
            timer.lap('lazy-pages daemon connected to the source (what its start took beyond the steps above)');
          }
          await runc.detached([...args, spec.id], consoleLogFile(side.containerDir), 120_000).catch(async (err: unknown) => {
            const tail = criuLogTail(await readFile(join(workDir, 'restore.log'), 'utf8').catch(() => ''), /Error|error/, 3);
            throw new CommandError('MIGRATION_FAILED', `restore on ${this.o.hostId} failed: ${tail || (err as Error).message}`);
          });
          timer.lap('restore (runc → CRIU restore)');
        },
        undoFailed(this.o.log, req.migrationId),
      );
      const restoredAt = Date.now();
      const restoreMs = performance.now() - started;
      void announce(plan); // a gratuitous ARP: the bridges learn the workload's MAC here now
      const pid = Number((await readFile(bundle.pidFile, 'utf8')).trim());
      const record = await this.c.save({
        spec,
        epoch: side.epoch!,
        state: 'running',
        templateVersion: 'migrated',
        rootfs: join(side.containerDir, 'rootfs'),
        netns: side.netns,
        pid,
        startedAt: restoredAt,
        exit: null,
        createdAt: Date.now(),
      });
      await this.o.sides.save({ ...side, restored: true });
      this.o.log.info({ migrationId: req.migrationId, workload: spec.id, pid, restoreMs: Math.round(restoreMs) }, 'workload restored');
      const criu = await readCriuStats(workDir, 'restore', parseRestoreStats);
      return { restoredAt, restoreMs, status: await this.c.statusOfRecord(record), steps: timer.steps, criu };
    });
  }

  /** A cold move: nothing ran; the moved root filesystem becomes a created container (started later if wanted). */
  private async registerCold(side: MigrationSide, spec: WorkloadSpec, started: number): Promise<RestoreResult> {
    const record = await this.c.save({
      spec,
      epoch: side.epoch!,
      state: 'created',
      templateVersion: 'migrated',
      rootfs: join(side.containerDir, 'rootfs'),
      netns: null,
      pid: null,
      startedAt: null,
      exit: null,
      createdAt: Date.now(),
    });
    await tearDownNetwork(side.netns!);
    await this.o.sides.save({ ...side, netns: null, restored: true });
    return { restoredAt: Date.now(), restoreMs: performance.now() - started, status: await this.c.statusOfRecord(record) };
  }

  /** Before the commit: undo everything (idempotent). */
  async abort(migrationId: string): Promise<{ done: boolean; note?: string }> {
    const side = await this.o.sides.load(migrationId);
    if (!side) return { done: true, note: 'nothing here' };
    return this.c.exclusive(side.workloadId, async () => {
      // Only what this migration restored goes; runc state it did not make (even unreadable) stays.
      // A restore that ended after its agent died (killed mid-restore) left runc state for the id
      // but no record and no `restored` mark: with no record of the workload here, that is ours too.
      const record = this.c.record(side.workloadId);
      const orphan = !side.restored && !record && side.spec !== undefined && (await this.c.runc.hasState(side.workloadId));
      if ((side.restored && (!record || record.epoch === side.epoch)) || orphan) {
        await this.c.runc.delete(side.workloadId, true).catch((err: unknown) => this.o.log.warn({ err }, 'runc delete during abort'));
        await this.c.forget(side.workloadId);
      }
      await this.stopDaemons(side);
      if (side.netns) await tearDownNetwork(side.netns);
      if (!this.c.record(side.workloadId)) await rm(this.c.bundle(side.workloadId).dir, { recursive: true, force: true });
      // A shared pool's root filesystem is the source's: only the images go.
      if (side.sharedRootfs) await rm(side.imagesDir, { recursive: true, force: true });
      else await this.c.roots.removeContainerDir(this.c.pool(side.spec?.pool ?? ''), side.containerDir);
      await this.o.sides.remove(migrationId);
      this.o.log.info({ migrationId, workload: side.workloadId }, 'migration destination cleaned after rollback');
      return { done: true };
    });
  }

  /** After the commit: stop the daemons, drop the images. */
  async finish(migrationId: string): Promise<{ done: boolean; note?: string; steps?: AgentStepTime[] }> {
    const side = await this.o.sides.load(migrationId);
    if (!side) return { done: true, note: 'already finished' };
    const timer = new StepTimer();
    const stopped = await this.stopDaemons(side);
    timer.lap('daemons stopped');
    await rm(side.imagesDir, { recursive: true, force: true });
    await this.o.sides.remove(migrationId);
    timer.lap('images and side file removed');
    return { done: true, note: stopped, steps: timer.steps };
  }

  /**
   * The migration's daemons, all at once. The rsync daemon is killed outright: its transfers
   * ended with the source's rsync, and on SIGTERM it lingers ~400 ms before it exits (measured
   * here), which every finish and abort waited for.
   */
  private async stopDaemons(side: MigrationSide): Promise<string> {
    const started = performance.now();
    const took = async (what: string, stop: Promise<void>) => {
      await stop;
      return `${what} ${Math.round(performance.now() - started)} ms`;
    };
    const ends = await Promise.all([
      took('rsync daemon', stopProcess(side.rsyncd, 'SIGKILL')),
      took('page server', stopProcess(side.pageServer)),
      took('lazy-pages daemon', stopProcess(side.lazyDaemon)),
    ]);
    return `stopped: ${ends.join(', ')}`;
  }
}
