import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import type {
  ContainerStatus,
  DumpResult,
  MigrationProgressEvent,
  MigrationStrategy,
  PrepareMigrationResult,
  RestoreResult,
  WorkloadSpec,
} from '@ferry/protocol';
import { freePort, isSameProcessAlive, type Logger } from '@ferry/runtime';
import { CommandError } from '../containers/errors.ts';
import type { ContainerManager } from '../containers/manager.ts';
import { announce, planNetwork, removeCriuLocks, setHostSide, setUpNetwork, tearDownNetwork, type NetworkPlan } from '../containers/network.ts';
import { spawnWithStatusFd } from './criu-status.ts';
import { LinkCounter } from './host-traffic.ts';
import { RsyncDaemon, rsyncPush, type RsyncTarget } from './rsync.ts';
import { createMigrationTls, criuTlsArgs, criuTlsConfig, writeMigrationTls, type MigrationTls } from './tls.ts';
import { MigrationDeadlines } from './deadlines.ts';
import { ref, stopProcess } from './processes.ts';
import { MigrationSides, newSide, type MigrationSide } from './state.ts';
import { rearmCheckpointTimerfds } from './timerfd-images.ts';

const CHECKPOINT_READY_TIMEOUT_MS = 120_000;
/** page files a page server already wrote on the destination: never deleted by the final rsync */
const PAGE_IMAGES = ['pages-*.img', 'pagemap-*.img'];

export interface MigrationManagerOptions {
  hostId: string;
  /** this host's transfer address */
  address: string | null;
  dataDir: string;
  /** the configured CRIU binary (page servers, lazy-pages daemons) */
  criuPath: string;
  /** how long a side's daemons may live after its prepare (MigrationDeadlines) */
  daemonDeadlineMs: number;
  containers: ContainerManager;
  log: Logger;
}

/**
 * This host's side of live migrations: as destination it prepares a staging area, a one-time
 * rsync daemon (and page server), the network namespace, then restores; as source it pre-syncs
 * the root filesystem, freezes and checkpoints, sends the rest, and either lets go (after the
 * commit) or resumes the workload (rollback). Every step is idempotent and recorded on disk.
 */
export class MigrationManager {
  private readonly sides: MigrationSides;
  private readonly traffic: LinkCounter;
  private readonly deadlines: MigrationDeadlines;
  /** the long-lived `runc checkpoint --lazy-pages` of a source, while it serves pages */
  /** lazy checkpoints serving pages, with the link's sent-bytes counter when the dump ended */
  private readonly checkpoints = new Map<string, { child: ChildProcess; done: Promise<number | null>; txAtDump?: number }>();

  /** told of copy progress (the agent publishes it as migration events) */
  onProgress: (event: MigrationProgressEvent) => void = () => undefined;

  constructor(private readonly o: MigrationManagerOptions) {
    this.sides = new MigrationSides(join(o.dataDir, 'migrations'));
    this.traffic = new LinkCounter(o.address);
    this.deadlines = new MigrationDeadlines({
      sides: this.sides,
      deadlineMs: o.daemonDeadlineMs,
      exclusive: (workloadId, work) => this.o.containers.exclusive(workloadId, work),
      log: o.log,
    });
  }

  /** Enforces every side's daemon deadline: now (sides from before this agent) and periodically. */
  watchDeadlines(): void {
    this.deadlines.watch();
  }

  unwatchDeadlines(): void {
    this.deadlines.unwatch();
  }

  private requireAddress(): string {
    if (!this.o.address) throw new CommandError('MIGRATION_FAILED', `host ${this.o.hostId} has no transfer address configured`);
    return this.o.address;
  }

  private async side(migrationId: string): Promise<MigrationSide> {
    const side = await this.sides.load(migrationId);
    if (!side) throw new CommandError('NOT_FOUND', `no migration ${migrationId} on host ${this.o.hostId}`);
    return side;
  }

  private containerDir(spec: WorkloadSpec): { dir: string; shared: boolean } {
    const pool = this.o.containers.pool(spec.pool);
    if (!pool) throw new CommandError('POOL_MISSING', `host ${this.o.hostId} has no storage pool ${spec.pool}`);
    return { dir: join(pool.path, 'containers', spec.id), shared: pool.shared };
  }

  private planFor(side: MigrationSide, spec: WorkloadSpec): NetworkPlan {
    if (!side.netns) throw new CommandError('MIGRATION_FAILED', 'no network namespace recorded');
    try {
      return planNetwork(side.netns, spec.networks, this.o.containers.networks());
    } catch (err) {
      throw new CommandError('NETWORK_MISSING', (err as Error).message);
    }
  }

  // ---- destination ---------------------------------------------------------------------------

  async prepare(req: {
    migrationId: string;
    spec: WorkloadSpec;
    epoch: number;
    strategy: MigrationStrategy;
    source: { hostId: string; address: string };
    secret: string;
    sharedRootfs: boolean;
  }): Promise<PrepareMigrationResult> {
    const address = this.requireAddress();
    const { migrationId, spec } = req;
    return this.o.containers.exclusive(spec.id, async () => {
      const existing = this.o.containers.record(spec.id);
      if (existing) throw new CommandError('CONFLICT', `host ${this.o.hostId} already has a container ${spec.id}`);
      const previous = await this.sides.load(migrationId);
      if (previous) await this.stopDaemons(previous); // a retried prepare starts its daemons afresh
      const { dir: containerDir, shared: claimed } = this.containerDir(spec);
      // the scheduler's probe proof decides; this host's own claim alone never skips a copy
      const shared = claimed && req.sharedRootfs;
      const workDir = this.sides.workDir(migrationId);
      await mkdir(workDir, { recursive: true });
      await mkdir(containerDir, { recursive: true });
      const imagesDir = join(containerDir, `ckpt-${migrationId}`);
      await mkdir(imagesDir, { recursive: true });

      // The namespace now, with the same address and MAC, bridged but down until the restore:
      // nothing of it remains to do while the workload is frozen.
      const netns = previous?.netns ?? `${this.o.containers.netnsPrefix}-${spec.id}-${randomBytes(4).toString('hex')}`;
      const side = newSide({
        migrationId,
        role: 'destination',
        workloadId: spec.id,
        strategy: req.strategy,
        containerDir,
        imagesDir,
        sharedRootfs: shared,
        spec,
        epoch: req.epoch,
        netns,
        sourceAddress: req.source.address,
        // a retried prepare starts its daemons afresh, with a fresh deadline
        deadlineAt: this.deadlines.fromNow(),
      });
      await this.sides.save(side);
      if (!previous?.netns || !(await namespaceExists(netns))) {
        await setUpNetwork(planNetwork(netns, spec.networks, this.o.containers.networks()), { hostSideUp: false });
      }
      await this.o.containers.writeBundleConfig(spec, join(containerDir, 'rootfs'), netns);

      const tls = await createMigrationTls(workDir);
      const rsyncPort = await freePort(address);
      const daemon = await RsyncDaemon.start({
        dir: workDir,
        address,
        port: rsyncPort,
        user: 'ferry',
        secret: req.secret,
        allowFrom: req.source.address,
        modules: [{ name: 'ct', path: containerDir }],
      });
      side.rsyncd = ref(daemon.pid);
      let pageServerPort: number | null = null;
      // On a shared pool the images directory is the same directory on both hosts: the source
      // dumps its pages straight into it, and a page server here would only break — CRIU opens
      // its images directory when it starts, and the source's dump replaces that directory (new
      // inode), so the server's first write fails (ENOENT) and the dump sees "The page server
      // doesn't answer". No page server then: the source's dump writes them itself.
      if (req.strategy === 'page-server' && !shared) {
        pageServerPort = await freePort(address);
        const pidfile = join(workDir, 'page-server.pid');
        // CRIU listens before it daemonizes, so the port accepts once this returns. Never probe
        // it with a connect: the page server accepts exactly one connection, then stops listening.
        await execa(
          this.o.criuPath,
          ['page-server', '--images-dir', imagesDir, '--address', address, '--port', String(pageServerPort), ...criuTlsArgs(workDir), '--daemon', '--pidfile', pidfile, '-o', join(workDir, 'page-server.log')],
          { timeout: 30_000 },
        );
        side.pageServer = ref(Number((await readFile(pidfile, 'utf8')).trim()));
      }
      await this.sides.save(side);
      this.o.log.info({ migrationId, workload: spec.id, rsyncPort, pageServerPort, netns }, 'migration destination prepared');
      return { address, rsyncPort, pageServerPort, sharedRootfs: shared, tls };
    });
  }

  async restore(req: { migrationId: string; strategy: MigrationStrategy; source: { address: string; lazyPagesPort: number | null } }): Promise<RestoreResult> {
    const side = await this.side(req.migrationId);
    const spec = side.spec!;
    return this.o.containers.exclusive(spec.id, async () => {
      const runc = this.o.containers.runc;
      const bundle = this.o.containers.bundle(spec.id);
      const plan = this.planFor(side, spec);
      const workDir = join(this.sides.workDir(req.migrationId), `restore-${Date.now()}`);
      await mkdir(workDir, { recursive: true });
      const started = performance.now();
      if (side.restored && (await runc.state(spec.id))?.status === 'running') {
        return { restoredAt: Date.now(), restoreMs: 0, status: await this.o.containers.statusOfRecord(this.o.containers.record(spec.id)!) };
      }
      const stale = await runc.state(spec.id).catch((err: unknown) => {
        throw new CommandError('MIGRATION_FAILED', `restore on ${this.o.hostId} failed: unreadable runc state for ${spec.id}: ${(err as Error).message}`);
      });
      if (stale) await runc.delete(spec.id, true);
      if (req.strategy === 'cold') {
        // Nothing ran: register the moved root filesystem as a created container (started later if wanted).
        const record = await this.o.containers.save({
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
        await this.sides.save({ ...side, netns: null, restored: true });
        return { restoredAt: Date.now(), restoreMs: performance.now() - started, status: await this.o.containers.statusOfRecord(record) };
      }
      const args = ['restore', '--detach', '--image-path', side.imagesDir, '--work-path', workDir, '--tcp-established', '--bundle', bundle.dir, '--pid-file', bundle.pidFile];
      if (req.strategy === 'lazy') {
        if (!req.source.lazyPagesPort) throw new CommandError('BAD_REQUEST', 'a lazy restore needs the source page server port');
        const pidfile = join(workDir, 'lazy-pages.pid');
        // Connects to the source's page server now; the restored process faults pages in through it.
        await execa(
          this.o.criuPath,
          [
            'lazy-pages',
            '--page-server',
            '--address',
            req.source.address,
            '--port',
            String(req.source.lazyPagesPort),
            ...criuTlsArgs(this.sides.workDir(req.migrationId)),
            '--images-dir',
            side.imagesDir,
            '--work-dir',
            workDir,
            '--daemon',
            '--pidfile',
            pidfile,
            '-o',
            'lazy-pages.log',
          ],
          { timeout: 30_000 },
        );
        side.lazyDaemon = ref(Number((await readFile(pidfile, 'utf8')).trim()));
        await this.sides.save(side);
        args.splice(1, 0, '--lazy-pages');
      }
      await this.rearmTimers(req.migrationId, side.imagesDir);
      await setHostSide(plan, true);
      try {
        await runc.detached([...args, spec.id], bundle.consoleLog, 120_000);
      } catch (err) {
        await setHostSide(plan, false).catch(() => undefined);
        const log = await readFile(join(workDir, 'restore.log'), 'utf8').catch(() => '');
        const tail = log.split('\n').filter((l) => /Error|error/.test(l)).slice(-3).join(' | ');
        throw new CommandError('MIGRATION_FAILED', `restore on ${this.o.hostId} failed: ${tail || (err as Error).message}`);
      }
      const restoredAt = Date.now();
      const restoreMs = performance.now() - started;
      void announce(plan);
      const pid = Number((await readFile(bundle.pidFile, 'utf8')).trim());
      const record = await this.o.containers.save({
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
      await this.sides.save({ ...side, restored: true });
      this.o.log.info({ migrationId: req.migrationId, workload: spec.id, pid, restoreMs: Math.round(restoreMs) }, 'workload restored');
      return { restoredAt, restoreMs, status: await this.o.containers.statusOfRecord(record) };
    });
  }

  /** Destination, before the commit: undo everything (idempotent). */
  async abort(migrationId: string): Promise<{ done: boolean; note?: string }> {
    const side = await this.sides.load(migrationId);
    if (!side) return { done: true, note: 'nothing here' };
    return this.o.containers.exclusive(side.workloadId, async () => {
      const runc = this.o.containers.runc;
      // Only what this migration restored goes; runc state it did not make (even unreadable) stays.
      if (side.restored) {
        const record = this.o.containers.record(side.workloadId);
        if (!record || record.epoch === side.epoch) {
          await runc.delete(side.workloadId, true).catch((err: unknown) => this.o.log.warn({ err }, 'runc delete during abort'));
          await this.o.containers.forget(side.workloadId);
        }
      }
      await this.stopDaemons(side);
      if (side.netns) await tearDownNetwork(side.netns);
      if (!this.o.containers.record(side.workloadId)) await rm(this.o.containers.bundle(side.workloadId).dir, { recursive: true, force: true });
      // A shared pool's root filesystem is the source's: only the images go.
      await rm(side.sharedRootfs ? side.imagesDir : side.containerDir, { recursive: true, force: true });
      await this.sides.remove(migrationId);
      this.o.log.info({ migrationId, workload: side.workloadId }, 'migration destination cleaned after rollback');
      return { done: true };
    });
  }

  /**
   * Ends every migration this host takes part in (decommissioning, lab teardown): daemons and lazy
   * dumps stopped, destination leftovers removed. Source workloads are left as they are.
   */
  async abandonAll(): Promise<number> {
    const sides = await this.sides.all();
    for (const side of sides) {
      if (side.role === 'destination') await this.abort(side.migrationId);
      else {
        await this.stopLazyCheckpoint(side.migrationId, side);
        await this.sides.remove(side.migrationId);
      }
    }
    return sides.length;
  }

  private async stopDaemons(side: MigrationSide): Promise<void> {
    await Promise.all([stopProcess(side.rsyncd), stopProcess(side.pageServer), stopProcess(side.lazyDaemon)]);
  }

  // ---- source --------------------------------------------------------------------------------

  private target(destination: { address: string; rsyncPort: number }, secret: string): RsyncTarget {
    return { address: destination.address, port: destination.rsyncPort, user: 'ferry', secret };
  }

  private async sourceSide(migrationId: string, workloadId: string, strategy: MigrationStrategy, sharedRootfs: boolean): Promise<MigrationSide> {
    const existing = await this.sides.load(migrationId);
    if (existing) return existing;
    const record = this.o.containers.record(workloadId);
    if (!record) throw new CommandError('NOT_FOUND', `no container ${workloadId} on host ${this.o.hostId}`);
    const { dir } = this.containerDir(record.spec);
    const side = newSide({ migrationId, role: 'source', workloadId, strategy, containerDir: dir, sharedRootfs, netns: record.netns });
    await this.sides.save(side);
    return side;
  }

  private workloadOf(migrationId: string): string {
    const match = /^m-(.+)-[a-z0-9]+$/.exec(migrationId);
    if (!match) throw new CommandError('BAD_REQUEST', `not a migration id: ${migrationId}`);
    return match[1]!;
  }

  async presync(req: { migrationId: string; destination: { address: string; rsyncPort: number }; secret: string; sharedRootfs: boolean }): Promise<{ bytes: number; ms: number }> {
    const workloadId = this.workloadOf(req.migrationId);
    const side = await this.sourceSide(req.migrationId, workloadId, 'lazy', req.sharedRootfs);
    if (req.sharedRootfs) return { bytes: 0, ms: 0 };
    const before = await this.traffic.txBytes();
    const result = await rsyncPush(join(side.containerDir, 'rootfs'), this.target(req.destination, req.secret), 'ct', 'rootfs/', 600_000, [], (p) =>
      this.onProgress({ type: 'migration.progress', migrationId: req.migrationId, workloadId, phase: 'presync', ...p, at: Date.now() }),
    );
    const bytes = (await this.traffic.txBytes()) - before;
    return { bytes: bytes > 0 ? bytes : result.bytes, ms: result.ms };
  }

  async dump(req: {
    migrationId: string;
    strategy: MigrationStrategy;
    destination: { address: string; rsyncPort: number; pageServerPort: number | null };
    sharedRootfs: boolean;
    tls: MigrationTls;
  }): Promise<DumpResult> {
    const workloadId = this.workloadOf(req.migrationId);
    return this.o.containers.exclusive(workloadId, async () => {
      const record = this.o.containers.record(workloadId);
      if (!record) throw new CommandError('NOT_FOUND', `no container ${workloadId} on host ${this.o.hostId}`);
      const side = await this.sourceSide(req.migrationId, workloadId, req.strategy, req.sharedRootfs);
      const saved = { ...side, strategy: req.strategy };
      if (side.dumped) return { frozenAt: side.frozenAt ?? Date.now(), dumpMs: 0, bytes: 0, lazyPagesPort: null };
      const runc = this.o.containers.runc;
      const plan = this.planFor(saved, record.spec);
      await rm(side.imagesDir, { recursive: true, force: true });
      await mkdir(side.imagesDir, { recursive: true });
      const workDir = this.sides.workDir(req.migrationId);
      if (req.strategy === 'lazy' || req.strategy === 'page-server') {
        await writeMigrationTls(workDir, req.tls);
        await this.o.containers.writeCriuConfig(workloadId, criuTlsConfig(workDir));
      }
      const common = ['--image-path', side.imagesDir, '--work-path', side.imagesDir, '--tcp-established'];
      const before = await this.traffic.txBytes();
      await this.o.containers.save({ ...record, state: 'migrating' });
      const frozenAt = Date.now();
      const started = performance.now();
      let lazyPagesPort: number | null = null;
      try {
        if (req.strategy === 'lazy') {
          lazyPagesPort = await freePort(this.requireAddress());
          const logFd = openSync(join(this.sides.workDir(req.migrationId), 'checkpoint.out'), 'a');
          try {
            const [binary, argv] = runc.argv(['checkpoint', '--lazy-pages', '--page-server', `${this.requireAddress()}:${lazyPagesPort}`, '--status-fd', '3', ...common, workloadId]);
            const child = await spawnWithStatusFd(
              binary,
              argv,
              join(this.sides.workDir(req.migrationId), 'status.fifo'),
              logFd,
              CHECKPOINT_READY_TIMEOUT_MS,
            );
            const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
            this.checkpoints.set(req.migrationId, { child, done });
            saved.checkpoint = ref(child.pid);
          } finally {
            closeSync(logFd);
          }
        } else {
          const extra = req.strategy === 'page-server' && req.destination.pageServerPort ? ['--page-server', `${req.destination.address}:${req.destination.pageServerPort}`] : [];
          await runc.checkpoint([...extra, ...common, workloadId], CHECKPOINT_READY_TIMEOUT_MS);
        }
      } catch (err) {
        // A failed dump leaves CRIU's network lock in place: the workload would run unreachable.
        await this.unfreeze(workloadId, plan);
        await this.o.containers.writeCriuConfig(workloadId);
        await this.o.containers.save({ ...record, state: 'running' });
        const log = await readFile(join(side.imagesDir, 'dump.log'), 'utf8').catch(() => '');
        const tail = log.split('\n').filter((l) => /Error/.test(l)).slice(-2).join(' | ');
        throw new CommandError('MIGRATION_FAILED', `checkpoint on ${this.o.hostId} failed: ${tail || (err as Error).message}`);
      }
      const dumpMs = performance.now() - started;
      // The source's namespace must stop answering ARP for the address from now on.
      await setHostSide(plan, false);
      await this.sides.save({ ...saved, dumped: true, frozenAt });
      const txAtDump = await this.traffic.txBytes();
      const bytes = Math.max(0, txAtDump - before);
      const live = this.checkpoints.get(req.migrationId);
      if (live) live.txAtDump = txAtDump;
      this.o.log.info({ migrationId: req.migrationId, strategy: req.strategy, dumpMs: Math.round(dumpMs) }, 'workload frozen and checkpointed');
      return { frozenAt, dumpMs, bytes, lazyPagesPort };
    });
  }

  async transfer(req: { migrationId: string; destination: { address: string; rsyncPort: number }; secret: string; sharedRootfs: boolean }): Promise<{ bytes: number; ms: number }> {
    const side = await this.side(req.migrationId);
    if (req.sharedRootfs) return { bytes: 0, ms: 0 }; // images and root filesystem are on the shared pool already
    const before = await this.traffic.txBytes();
    // One connection for the images and the final root-filesystem delta (while frozen: files
    // appended during the presync would otherwise break the restore with "bad size").
    const exclude = side.strategy === 'page-server' ? PAGE_IMAGES : [];
    const result = await rsyncPush(side.containerDir, this.target(req.destination, req.secret), 'ct', '', 600_000, exclude, (p) =>
      this.onProgress({ type: 'migration.progress', migrationId: req.migrationId, workloadId: side.workloadId, phase: 'transfer', ...p, at: Date.now() }),
    );
    const bytes = (await this.traffic.txBytes()) - before;
    return { bytes: bytes > 0 ? bytes : result.bytes, ms: result.ms };
  }

  /**
   * Source, rollback: the workload runs here again, from memory (thaw) or from its kept images;
   * before the freeze it never stopped, and only the migration's staging is removed.
   */
  async resume(migrationId: string): Promise<ContainerStatus> {
    const workloadId = this.workloadOf(migrationId);
    return this.o.containers.exclusive(workloadId, async () => {
      const record = this.o.containers.record(workloadId);
      if (!record) throw new CommandError('NOT_FOUND', `no container ${workloadId} on host ${this.o.hostId}`);
      const side = await this.sides.load(migrationId);
      const runc = this.o.containers.runc;
      const state = await runc.state(workloadId);
      if (record.state !== 'migrating' && (!side || (!side.dumped && side.checkpoint === null))) {
        // Never frozen here (rolled back before the freeze, or resumed already by an earlier try):
        // the workload keeps the state it has (a cold move's stays stopped); only this
        // migration's staging, if the presync left one, goes.
        if (side) {
          await rm(side.imagesDir, { recursive: true, force: true });
          await this.sides.remove(migrationId);
          this.o.log.info({ migrationId, workload: workloadId }, 'migration rolled back before the freeze: source staging removed');
        }
        return this.o.containers.statusOfRecord(record);
      }
      const plan = planNetwork(record.netns ?? side?.netns ?? '', record.spec.networks, this.o.containers.networks());
      if (!side?.dumped || state?.status === 'running' || state?.status === 'paused') {
        // Never frozen, or frozen by a lazy dump that has not let go: stop CRIU, thaw, unlock.
        await this.stopLazyCheckpoint(migrationId, side);
        await this.unfreeze(workloadId, plan);
      } else {
        if (side.strategy === 'lazy' && (await this.checkpointFinished(migrationId, side))) {
          throw new CommandError('MIGRATION_FAILED', `every page of ${workloadId} already went to the destination: it cannot resume here`);
        }
        await this.stopLazyCheckpoint(migrationId, side);
        if (state) await runc.delete(workloadId, true);
        await this.rearmTimers(migrationId, side.imagesDir);
        await removeCriuLocks(plan.netns);
        await setHostSide(plan, true);
        const bundle = this.o.containers.bundle(workloadId);
        const workDir = join(this.sides.workDir(migrationId), `resume-${Date.now()}`);
        await mkdir(workDir, { recursive: true });
        await runc.detached(
          ['restore', '--detach', '--image-path', side.imagesDir, '--work-path', workDir, '--tcp-established', '--bundle', bundle.dir, '--pid-file', bundle.pidFile, workloadId],
          bundle.consoleLog,
        );
        void announce(plan);
      }
      const pid = Number((await readFile(this.o.containers.bundle(workloadId).pidFile, 'utf8').catch(() => String(record.pid ?? 0))).trim()) || record.pid;
      await this.o.containers.writeCriuConfig(workloadId);
      const resumed = await this.o.containers.save({ ...record, state: 'running', pid });
      if (side) {
        await rm(side.imagesDir, { recursive: true, force: true });
        await this.sides.remove(migrationId);
      }
      this.o.log.warn({ migrationId, workload: workloadId }, 'migration rolled back: workload runs on the source again');
      return this.o.containers.statusOfRecord(resumed);
    });
  }

  /** Before any restore from a checkpoint: CRIU would bring periodic timerfds back disarmed. */
  private async rearmTimers(migrationId: string, imagesDir: string): Promise<void> {
    const rearmed = await rearmCheckpointTimerfds(imagesDir).catch((err: unknown) => {
      throw new CommandError('MIGRATION_FAILED', `unreadable checkpoint on ${this.o.hostId}: ${(err as Error).message}`);
    });
    if (rearmed > 0) this.o.log.info({ migrationId, rearmed }, 'expired periodic timers re-armed in the checkpoint');
  }

  /** Thaw a frozen (not dumped) workload and remove CRIU's lock: it runs and answers again. */
  private async unfreeze(workloadId: string, plan: NetworkPlan): Promise<void> {
    const runc = this.o.containers.runc;
    if ((await runc.state(workloadId))?.status === 'paused') await runc.resume(workloadId).catch(() => undefined);
    if (plan.netns) await removeCriuLocks(plan.netns);
    await setHostSide(plan, true).catch(() => undefined);
    void announce(plan);
  }

  private async checkpointFinished(migrationId: string, side: MigrationSide): Promise<boolean> {
    const live = this.checkpoints.get(migrationId);
    if (live) return live.child.exitCode === 0;
    return side.checkpoint !== null && !isSameProcessAlive(side.checkpoint.pid, side.checkpoint.startTime);
  }

  /** Ends a lazy dump that still serves pages: its CRIU (runc's child) first, then runc itself. */
  private async stopLazyCheckpoint(migrationId: string, side: MigrationSide | null): Promise<void> {
    const p = side?.checkpoint;
    if (!p || !isSameProcessAlive(p.pid, p.startTime)) return;
    const children = await readFile(`/proc/${p.pid}/task/${p.pid}/children`, 'utf8').catch(() => '');
    for (const child of children.trim().split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(child, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    const live = this.checkpoints.get(migrationId);
    if (live) await Promise.race([live.done, sleep(10_000)]);
    await stopProcess(p);
    this.checkpoints.delete(migrationId);
  }

  /**
   * After the commit, when the destination died while it pulled pages: stop the lazy checkpoint
   * (outside the workload's mutex, so a finish waiting for the last page ends and cleans up).
   */
  async abandonPages(migrationId: string): Promise<{ done: boolean; note?: string }> {
    const side = await this.sides.load(migrationId);
    if (!side) return { done: true, note: 'already finished' };
    await this.stopLazyCheckpoint(migrationId, side);
    this.o.log.warn({ migrationId, workload: side.workloadId }, 'destination gone: stopped serving it pages');
    return { done: false, note: 'pages abandoned; finish follows' };
  }

  /**
   * After the commit. Source: wait for the last page to leave (lazy), then remove the container
   * here (its root filesystem too, unless a shared pool holds it for the destination).
   * Destination: stop the daemons, drop the images.
   */
  async finish(migrationId: string, role: 'source' | 'destination'): Promise<{ done: boolean; note?: string; lazyBytes?: number }> {
    const side = await this.sides.load(migrationId);
    if (!side) return { done: true, note: 'already finished' };
    if (role === 'destination') {
      await this.stopDaemons(side);
      await rm(side.imagesDir, { recursive: true, force: true });
      await this.sides.remove(migrationId);
      return { done: true };
    }
    return this.o.containers.exclusive(side.workloadId, async () => {
      const live = this.checkpoints.get(migrationId);
      let note: string | undefined;
      let lazyBytes: number | undefined;
      if (live) {
        const code = await Promise.race([live.done, sleep(600_000).then(() => 'timeout' as const)]);
        if (code === 'timeout') throw new CommandError('BUSY', 'the destination is still pulling pages');
        note = `lazy checkpoint exited with ${code}`;
        // the pages the destination pulled after the restore, as this host's link sent them
        // (CRIU's own stats-dump reports 0 lazy pages for a runc lazy checkpoint)
        if (live.txAtDump !== undefined) lazyBytes = Math.max(0, (await this.traffic.txBytes()) - live.txAtDump);
        this.o.log.info({ migrationId, exitCode: code, lazyBytes }, 'lazy checkpoint done: the destination has every page');
        this.checkpoints.delete(migrationId);
      } else if (side.checkpoint && isSameProcessAlive(side.checkpoint.pid, side.checkpoint.startTime)) {
        throw new CommandError('BUSY', 'the destination is still pulling pages');
      }
      const runc = this.o.containers.runc;
      if (await runc.state(side.workloadId)) await runc.delete(side.workloadId, true);
      const record = this.o.containers.record(side.workloadId);
      if (record?.netns) await tearDownNetwork(record.netns);
      await rm(side.sharedRootfs ? side.imagesDir : side.containerDir, { recursive: true, force: true });
      await this.o.containers.forget(side.workloadId);
      await this.sides.remove(migrationId);
      this.o.log.info({ migrationId, workload: side.workloadId }, 'migrated away: nothing of it remains here');
      return { done: true, ...(note ? { note } : {}), ...(lazyBytes === undefined ? {} : { lazyBytes }) };
    });
  }
}

async function namespaceExists(name: string): Promise<boolean> {
  const { stdout } = await execa('ip', ['netns', 'list'], { reject: false });
  return stdout.split('\n').some((line) => line.split(' ')[0] === name);
}

