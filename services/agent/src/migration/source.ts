import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentStepTime, ContainerStatus, DumpResult, MigrationProgressEvent, MigrationStrategy } from '@ferry/protocol';
import { freePort } from '@ferry/runtime';
import { CommandError } from '../containers/errors.ts';
import { announce, planNetwork, removeCriuLocks, setHostSide, tearDownNetwork, type NetworkPlan } from '../containers/network.ts';
import type { ContainerRecord } from '../containers/records.ts';
import type { RootfsBase, RootfsStore } from '../containers/rootfs.ts';
import type { Runc } from '../containers/runc.ts';
import { containerDir, criuLogTail, planFor, rearmTimers, requireAddress, requireSide, undoFailed, workloadOf, type MigrationHost } from './common.ts';
import type { ContainerAccess } from '../containers/access.ts';
import { spawnWithStatusFd } from './criu-status.ts';
import { parseDumpStats, readCriuStats } from './criu-stats.ts';
import type { LinkCounter } from './host-traffic.ts';
import { isAlive, ref, stopProcess } from './processes.ts';
import { Reverter } from './reverter.ts';
import { StepTimer } from './step-timer.ts';
import { sameRootfsBase } from './rootfs-base.ts';
import { rsyncPull, rsyncPush, type RsyncTarget } from './rsync.ts';
import { newSide, type MigrationSide } from './state.ts';
import { criuTlsConfig, writeMigrationTls, type MigrationTls } from './tls.ts';

const CHECKPOINT_READY_TIMEOUT_MS = 120_000;
/** page files a page server already wrote on the destination: never deleted by the final rsync */
const PAGE_IMAGES = ['pages-*.img', 'pagemap-*.img'];

/** Exactly what the source half uses of the container manager (ContainerManager has it all). */
export interface SourceContainers extends ContainerAccess {
  /** checkpoints (runc runs the configured CRIU), thaw, and the rollback's restore from images */
  readonly runc: Pick<Runc, 'argv' | 'checkpoint' | 'state' | 'pause' | 'resume' | 'delete' | 'detached'>;
  /** the container's CRIU options file; `extra` lines (the page stream's TLS) for a while */
  writeCriuConfig(workloadId: string, extra?: string): Promise<void>;
  /** root filesystems in the pools (a copy-on-write root is a subvolume: removed as one) */
  readonly roots: Pick<RootfsStore, 'removeContainerDir'>;
}

export interface MigrationSourceOptions extends MigrationHost {
  containers: SourceContainers;
  /** bytes this host sent on its transfer link */
  traffic: LinkCounter;
  /** copy progress (the agent publishes it as migration events) */
  progress: (event: MigrationProgressEvent) => void;
}

interface Destination {
  address: string;
  rsyncPort: number;
}

export interface CopyRequest {
  migrationId: string;
  destination: Destination;
  secret: string;
  sharedRootfs: boolean;
  /** presync: what the destination's root was prepared from, as its prepare said (absent: ask it) */
  destinationBase?: RootfsBase | null | undefined;
}

export interface ResumeRequest {
  migrationId: string;
  /** only get ready to run it again (see ready): the rollback's step before the destination is aborted */
  readyOnly?: boolean | undefined;
  /** where the pages are when the dump left them on the destination only (page-server) */
  pagesFrom?: { destination: Destination; secret: string } | undefined;
}

export interface DumpRequest {
  migrationId: string;
  strategy: MigrationStrategy;
  destination: Destination & { pageServerPort: number | null };
  sharedRootfs: boolean;
  tls: MigrationTls;
}

/** A lazy checkpoint serving pages, with the link's sent-bytes counter when its dump ended. */
interface LiveCheckpoint {
  child: ChildProcess;
  done: Promise<number | null>;
  txAtDump?: number;
  /** when the dump ended (performance.now()) and when the checkpoint exited: the lazy page transfer */
  dumpedAt?: number;
  exitedAt?: number;
}

/**
 * The sending half of a migration (Incus' migration source): pre-syncs the root filesystem while
 * the workload runs, freezes and checkpoints it, sends the rest, and then either lets go (after
 * the commit, once a lazy checkpoint's last page left) or runs the workload again (rollback).
 * Every command is idempotent per migration id; what it did is in the side file.
 */
export class MigrationSource {
  private readonly c: SourceContainers;
  /** lazy checkpoints (`runc checkpoint --lazy-pages`) of this agent, while they serve pages */
  private readonly checkpoints = new Map<string, LiveCheckpoint>();

  constructor(private readonly o: MigrationSourceOptions) {
    this.c = o.containers;
  }

  private target(destination: Destination, secret: string): RsyncTarget {
    return { address: destination.address, port: destination.rsyncPort, user: 'ferry', secret };
  }

  private requireRecord(workloadId: string): ContainerRecord {
    const record = this.c.record(workloadId);
    if (!record) throw new CommandError('NOT_FOUND', `no container ${workloadId} on host ${this.o.hostId}`);
    return record;
  }

  /** This migration's side here, made by its first command (presync or dump). */
  private async sourceSide(migrationId: string, workloadId: string, strategy: MigrationStrategy, sharedRootfs: boolean): Promise<MigrationSide> {
    const existing = await this.o.sides.load(migrationId);
    if (existing) return existing;
    const record = this.requireRecord(workloadId);
    const { dir } = containerDir(this.o, this.c.pool(record.spec.pool), record.spec);
    const side = newSide({ migrationId, role: 'source', workloadId, strategy, containerDir: dir, sharedRootfs, netns: record.netns });
    await this.o.sides.save(side);
    return side;
  }

  async presync(req: CopyRequest): Promise<{ bytes: number; ms: number }> {
    const workloadId = workloadOf(req.migrationId);
    const side = await this.sourceSide(req.migrationId, workloadId, 'lazy', req.sharedRootfs);
    if (req.sharedRootfs) return { bytes: 0, ms: 0 };
    const before = await this.o.traffic.txBytes();
    const target = this.target(req.destination, req.secret);
    const sameBase = await sameRootfsBase(side.containerDir, target, this.o.sides.workDir(req.migrationId), req.destinationBase);
    const { source: mine, destination: theirs } = sameBase;
    if (!sameBase.same && mine && theirs) {
      // a copy against another version of the template would be complete (flattened), and on a
      // simple-quota pool every byte of it charged to the workload's disk limit: refused, clearly
      throw new CommandError(
        'MIGRATION_FAILED',
        `the root of ${workloadId} was made from template ${mine.template}@${mine.version}, the destination has ${theirs.template}@${theirs.version}: make the template the same on both hosts (deploy/setup) first`,
      );
    }
    if (!sameBase.same) this.o.log.info({ migrationId: req.migrationId, ...sameBase }, 'this root does not say which template it was made from: every file is sent');
    const result = await rsyncPush(
      join(side.containerDir, 'rootfs'),
      target,
      'ct',
      'rootfs/',
      600_000,
      [],
      (p) => this.o.progress({ type: 'migration.progress', migrationId: req.migrationId, workloadId, phase: 'presync', ...p, at: Date.now() }),
      sameBase.same ? [] : ['--ignore-times'],
    );
    const bytes = (await this.o.traffic.txBytes()) - before;
    return { bytes: bytes > 0 ? bytes : result.bytes, ms: result.ms };
  }

  dump(req: DumpRequest): Promise<DumpResult> {
    const workloadId = workloadOf(req.migrationId);
    return this.c.exclusive(workloadId, async () => {
      const record = this.requireRecord(workloadId);
      const side = await this.sourceSide(req.migrationId, workloadId, req.strategy, req.sharedRootfs);
      const saved = { ...side, strategy: req.strategy };
      // dumped already (a copy of the request, or the scheduler asking again): it stays frozen
      if (side.dumped) return { frozenAt: side.frozenAt ?? Date.now(), dumpMs: 0, bytes: 0, lazyPagesPort: null };
      const plan = planFor(saved, record.spec, this.c.networks());
      await rm(side.imagesDir, { recursive: true, force: true });
      await mkdir(side.imagesDir, { recursive: true });
      const workDir = this.o.sides.workDir(req.migrationId);
      const common = ['--image-path', side.imagesDir, '--work-path', side.imagesDir, '--tcp-established'];
      const timer = new StepTimer();

      // Until the checkpoint stands, every step is undone on failure: a failed dump leaves CRIU's
      // network lock in place and may leave the workload paused (it would run unreachable, or not
      // at all), its record saying migrating, and the page stream's TLS in its CRIU config.
      const frozen = await Reverter.run(
        async (revert) => {
          if (req.strategy === 'lazy' || req.strategy === 'page-server') {
            await writeMigrationTls(workDir, req.tls);
            await this.c.writeCriuConfig(workloadId, criuTlsConfig(workDir));
            revert.add(() => this.c.writeCriuConfig(workloadId), 'CRIU config without TLS');
          }
          const before = await this.o.traffic.txBytes();
          await this.c.save({ ...record, state: 'migrating' });
          revert.add(() => this.c.save({ ...record, state: 'running' }), 'record running');
          const frozenAt = Date.now();
          const started = performance.now();
          timer.start();
          revert.add(() => this.unfreeze(workloadId, plan), 'thaw and network unlock');
          // Frozen here, not by CRIU: CRIU's cgroup-v1 freezer loop writes FROZEN, reads the state
          // (still FREEZING, mostly) and then sleeps 100 ms before reading again, so nearly every
          // dump froze the workload 100 ms longer than needed; runc's pause polls in microseconds,
          // and CRIU, finding the cgroup frozen, dumps at once (and leaves it frozen if it fails:
          // the revert above thaws it). Measured on the plain floor: 243–277 → 156–229 ms.
          await this.c.runc.pause(workloadId);
          timer.lap('frozen (runc pause)');
          // The source's namespace must stop answering ARP for the address: its link goes down
          // while CRIU dumps (the link is the container's, not the one pages and images go over).
          const linkDown = setHostSide(plan, false);
          // (undone first: the thaw above brings the link up only once this is done)
          revert.add(() => linkDown.catch(() => undefined), 'link down settled');
          const lazyPagesPort = await this.checkpoint(req, saved, common).catch(async (err: unknown) => {
            const tail = criuLogTail(await readFile(join(side.imagesDir, 'dump.log'), 'utf8').catch(() => ''), /Error/, 2);
            throw new CommandError('MIGRATION_FAILED', `checkpoint on ${this.o.hostId} failed: ${tail || (err as Error).message}`);
          });
          await linkDown;
          timer.lap(req.strategy === 'lazy' ? 'checkpoint, serving pages (runc → CRIU dump), source link down alongside' : 'checkpoint (runc → CRIU dump), source link down alongside');
          return { before, frozenAt, started, lazyPagesPort };
        },
        undoFailed(this.o.log, req.migrationId),
      );

      const dumpMs = performance.now() - frozen.started;
      await this.o.sides.save({ ...saved, dumped: true, frozenAt: frozen.frozenAt });
      const txAtDump = await this.o.traffic.txBytes();
      timer.lap('side file, link counter');
      const bytes = Math.max(0, txAtDump - frozen.before);
      const live = this.checkpoints.get(req.migrationId);
      if (live) {
        live.txAtDump = txAtDump;
        live.dumpedAt = performance.now();
      }
      this.o.log.info({ migrationId: req.migrationId, strategy: req.strategy, dumpMs: Math.round(dumpMs) }, 'workload frozen and checkpointed');
      const criu = await readCriuStats(side.imagesDir, 'dump', parseDumpStats);
      return { frozenAt: frozen.frozenAt, dumpMs, bytes, lazyPagesPort: frozen.lazyPagesPort, steps: timer.steps, criu };
    });
  }

  /**
   * The checkpoint itself, through runc (which runs the configured CRIU). Lazy: `runc checkpoint
   * --lazy-pages` keeps running and serves the pages; it is ready when CRIU writes its status
   * byte, and its pid goes into `side`. Otherwise it ends with the dump (page-server: the pages
   * went to the destination's page server). Returns the lazy page server's port, if any.
   */
  private async checkpoint(req: DumpRequest, side: MigrationSide, common: string[]): Promise<number | null> {
    const workloadId = side.workloadId;
    if (req.strategy !== 'lazy') {
      const extra = req.strategy === 'page-server' && req.destination.pageServerPort ? ['--page-server', `${req.destination.address}:${req.destination.pageServerPort}`] : [];
      await this.c.runc.checkpoint([...extra, ...common, workloadId], CHECKPOINT_READY_TIMEOUT_MS);
      return null;
    }
    const address = requireAddress(this.o);
    const lazyPagesPort = await freePort(address);
    const workDir = this.o.sides.workDir(req.migrationId);
    const logFd = openSync(join(workDir, 'checkpoint.out'), 'a');
    try {
      const [binary, argv] = this.c.runc.argv(['checkpoint', '--lazy-pages', '--page-server', `${address}:${lazyPagesPort}`, '--status-fd', '3', ...common, workloadId]);
      const child = await spawnWithStatusFd(binary, argv, join(workDir, 'status.fifo'), logFd, CHECKPOINT_READY_TIMEOUT_MS);
      const live: LiveCheckpoint = { child, done: Promise.resolve(null) };
      live.done = new Promise<number | null>((resolve) =>
        child.once('exit', (code) => {
          live.exitedAt = performance.now();
          resolve(code);
        }),
      );
      this.checkpoints.set(req.migrationId, live);
      side.checkpoint = ref(child.pid);
    } finally {
      closeSync(logFd);
    }
    return lazyPagesPort;
  }

  async transfer(req: CopyRequest): Promise<{ bytes: number; ms: number; steps: AgentStepTime[] }> {
    const side = await requireSide(this.o, req.migrationId);
    if (req.sharedRootfs) return { bytes: 0, ms: 0, steps: [] }; // images and root filesystem are on the shared pool already
    const before = await this.o.traffic.txBytes();
    // One connection for the images and the final root-filesystem delta (while frozen: files
    // appended during the presync would otherwise break the restore with "bad size").
    const exclude = side.strategy === 'page-server' ? PAGE_IMAGES : [];
    const result = await rsyncPush(side.containerDir, this.target(req.destination, req.secret), 'ct', '', 600_000, exclude, (p) =>
      this.o.progress({ type: 'migration.progress', migrationId: req.migrationId, workloadId: side.workloadId, phase: 'transfer', ...p, at: Date.now() }),
    );
    const bytes = (await this.o.traffic.txBytes()) - before;
    return { bytes: bytes > 0 ? bytes : result.bytes, ms: result.ms, steps: [{ step: 'rsync: images and root-filesystem delta', ms: Math.round(result.ms * 10) / 10 }] };
  }

  /**
   * Rollback: the workload runs here again, from memory (thaw) or from its kept images; before
   * the freeze it never stopped, and only the migration's staging is removed. With `readyOnly`,
   * only what must happen before the destination is aborted (see ready).
   */
  resume(req: ResumeRequest): Promise<ContainerStatus> {
    const { migrationId } = req;
    const workloadId = workloadOf(migrationId);
    if (req.readyOnly) return this.c.exclusive(workloadId, () => this.ready(req));
    return this.c.exclusive(workloadId, async () => {
      const record = this.requireRecord(workloadId);
      const side = await this.o.sides.load(migrationId);
      const runc = this.c.runc;
      const state = await runc.state(workloadId);
      if (record.state !== 'migrating' && (!side || (!side.dumped && side.checkpoint === null))) {
        // Never frozen here (rolled back before the freeze, or resumed already by an earlier try):
        // the workload keeps the state it has (a cold move's stays stopped); only this
        // migration's staging, if the presync left one, goes.
        if (side) {
          await this.dropSide(side);
          this.o.log.info({ migrationId, workload: workloadId }, 'migration rolled back before the freeze: source staging removed');
        }
        return this.c.statusOfRecord(record);
      }
      const plan = planNetwork(record.netns ?? side?.netns ?? '', record.spec.networks, this.c.networks());
      if (!side?.dumped || state?.status === 'running' || state?.status === 'paused') {
        // Never frozen, or frozen by a lazy dump that has not let go: stop CRIU, thaw, unlock.
        await this.stopLazyCheckpoint(migrationId, side);
        await this.unfreeze(workloadId, plan);
      } else {
        if (side.strategy === 'lazy' && (await this.checkpointFinished(migrationId, side))) {
          throw new CommandError('MIGRATION_FAILED', `every page of ${workloadId} already went to the destination: it cannot resume here`);
        }
        await this.stopLazyCheckpoint(migrationId, side);
        await this.pagesBack(side, req);
        if (state) await runc.delete(workloadId, true);
        await rearmTimers(this.o, migrationId, side.imagesDir);
        // the dump's lock goes (CRIU's restore sets its own), but the link stays down until the
        // sockets are back: the bridges still send the workload's traffic here, and a client's
        // retransmission reaching a namespace with no socket for it yet is answered with a reset
        await removeCriuLocks(plan.netns);
        const bundle = this.c.bundle(workloadId);
        const workDir = join(this.o.sides.workDir(migrationId), `resume-${Date.now()}`);
        await mkdir(workDir, { recursive: true });
        await runc.detached(
          ['restore', '--detach', '--image-path', side.imagesDir, '--work-path', workDir, '--tcp-established', '--bundle', bundle.dir, '--pid-file', bundle.pidFile, workloadId],
          bundle.consoleLog,
        );
        await setHostSide(plan, true);
        void announce(plan);
      }
      const pid = Number((await readFile(this.c.bundle(workloadId).pidFile, 'utf8').catch(() => String(record.pid ?? 0))).trim()) || record.pid;
      await this.c.writeCriuConfig(workloadId);
      const resumed = await this.c.save({ ...record, state: 'running', pid });
      if (side) await this.dropSide(side);
      this.o.log.warn({ migrationId, workload: workloadId }, 'migration rolled back: workload runs on the source again');
      return this.c.statusOfRecord(resumed);
    });
  }

  /**
   * The rollback's first step once dumped, before the destination's copy is removed (which may be
   * the only one until this succeeds): make sure the workload can run here again, without running
   * it. A lazy checkpoint stops serving pages — unless it already sent the last one, when CRIU
   * ended the frozen process: then this refuses, and the rollback goes no further. A page-server
   * dump's pages are pulled back from the destination. Images on a shared pool are moved out of
   * the directory the destination's abort removes. Idempotent; the workload stays frozen.
   */
  private async ready(req: ResumeRequest): Promise<ContainerStatus> {
    const { migrationId } = req;
    const workloadId = workloadOf(migrationId);
    const record = this.requireRecord(workloadId);
    let side = await this.o.sides.load(migrationId);
    if (side?.dumped) {
      const state = await this.c.runc.state(workloadId);
      const held = state?.status === 'running' || state?.status === 'paused';
      if (side.strategy === 'lazy' && !held && (await this.checkpointFinished(migrationId, side))) {
        throw new CommandError('MIGRATION_FAILED', `every page of ${workloadId} already went to the destination: it cannot resume here, and the destination's copy must stay`);
      }
      await this.stopLazyCheckpoint(migrationId, side);
      if (!held) {
        await this.pagesBack(side, req);
        side = await this.keepSharedImages(side);
      }
      this.o.log.warn({ migrationId, workload: workloadId }, 'rollback: the source is ready to run the workload again');
    }
    return this.c.statusOfRecord(record);
  }

  /**
   * On a shared pool the images directory is the destination's too, and its abort removes it: it
   * is renamed to one only this side knows (the same filesystem: no copy), before that abort.
   */
  private async keepSharedImages(side: MigrationSide): Promise<MigrationSide> {
    const kept = join(side.containerDir, `ckpt-${side.migrationId}.rollback`);
    if (!side.sharedRootfs || side.imagesDir === kept) return side;
    try {
      await rename(side.imagesDir, kept);
    } catch (err) {
      // renamed by an earlier try that did not get to save the side
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !(await stat(kept).catch(() => null))) throw err;
    }
    const moved = { ...side, imagesDir: kept };
    await this.o.sides.save(moved);
    return moved;
  }

  /**
   * A page-server dump wrote the pages into the destination's images directory only (unless a
   * shared pool holds that directory for both): the rollback pulls them back from the
   * destination's transfer daemon, which the rollback's order keeps until ready-source is done.
   */
  private async pagesBack(side: MigrationSide, req: ResumeRequest): Promise<void> {
    if (side.strategy !== 'page-server' || side.sharedRootfs || (await this.hasPages(side.imagesDir))) return;
    if (!req.pagesFrom) throw new CommandError('BAD_REQUEST', `the pages of ${side.workloadId} are on the destination: a resume needs where to pull them from`);
    const images = relative(side.containerDir, side.imagesDir);
    try {
      const pulled = await rsyncPull(this.target(req.pagesFrom.destination, req.pagesFrom.secret), 'ct', images, side.imagesDir, PAGE_IMAGES);
      this.o.log.warn({ migrationId: side.migrationId, bytes: pulled.bytes, ms: Math.round(pulled.ms) }, 'rollback: pulled the pages back from the destination');
    } catch (err) {
      throw new CommandError('MIGRATION_FAILED', `the pages of ${side.workloadId} are on the destination only and could not be pulled back: ${(err as Error).message}`);
    }
    if (!(await this.hasPages(side.imagesDir))) throw new CommandError('MIGRATION_FAILED', `the destination holds no pages of ${side.workloadId}: it cannot resume here`);
  }

  private async hasPages(imagesDir: string): Promise<boolean> {
    const names = await readdir(imagesDir).catch(() => [] as string[]);
    return names.some((n) => /^pagemap-\d+\.img$/.test(n)) && names.some((n) => /^pages-\d+\.img$/.test(n));
  }

  private async dropSide(side: MigrationSide): Promise<void> {
    await rm(side.imagesDir, { recursive: true, force: true });
    await this.o.sides.remove(side.migrationId);
  }

  /** Thaw a frozen (not dumped) workload and remove CRIU's lock: it runs and answers again. */
  private async unfreeze(workloadId: string, plan: NetworkPlan): Promise<void> {
    const runc = this.c.runc;
    if ((await runc.state(workloadId))?.status === 'paused') await runc.resume(workloadId).catch(() => undefined);
    if (plan.netns) await removeCriuLocks(plan.netns);
    await setHostSide(plan, true).catch(() => undefined);
    void announce(plan);
  }

  private async checkpointFinished(migrationId: string, side: MigrationSide): Promise<boolean> {
    const live = this.checkpoints.get(migrationId);
    if (live) return live.child.exitCode === 0;
    return side.checkpoint !== null && !isAlive(side.checkpoint);
  }

  /** Ends a lazy dump that still serves pages: its CRIU (runc's child) first, then runc itself. */
  private async stopLazyCheckpoint(migrationId: string, side: MigrationSide | null): Promise<void> {
    const p = side?.checkpoint;
    if (!p || !isAlive(p)) return;
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
    const side = await this.o.sides.load(migrationId);
    if (!side) return { done: true, note: 'already finished' };
    await this.stopLazyCheckpoint(migrationId, side);
    this.o.log.warn({ migrationId, workload: side.workloadId }, 'destination gone: stopped serving it pages');
    return { done: false, note: 'pages abandoned; finish follows' };
  }

  /** Decommissioning: stop serving pages and forget the side; the workload is left as it is. */
  async abandon(side: MigrationSide): Promise<void> {
    await this.stopLazyCheckpoint(side.migrationId, side);
    await this.o.sides.remove(side.migrationId);
  }

  /**
   * After the commit: wait for the last page to leave (lazy), then remove the container here (its
   * root filesystem too, unless a shared pool holds it for the destination).
   */
  async finish(migrationId: string): Promise<{ done: boolean; note?: string; lazyBytes?: number }> {
    const side = await this.o.sides.load(migrationId);
    if (!side) return { done: true, note: 'already finished' };
    return this.c.exclusive(side.workloadId, async () => {
      const live = this.checkpoints.get(migrationId);
      let note: string | undefined;
      let lazyBytes: number | undefined;
      let lazyMs: number | undefined;
      const timer = new StepTimer();
      timer.start();
      if (live) {
        const code = await Promise.race([live.done, sleep(600_000).then(() => 'timeout' as const)]);
        timer.lap('waiting for the last page to leave');
        if (live.dumpedAt !== undefined && live.exitedAt !== undefined) lazyMs = Math.round(live.exitedAt - live.dumpedAt);
        if (code === 'timeout') throw new CommandError('BUSY', 'the destination is still pulling pages');
        note = `lazy checkpoint exited with ${code}`;
        // the pages the destination pulled after the restore, as this host's link sent them
        // (CRIU's own stats-dump reports 0 lazy pages for a runc lazy checkpoint)
        if (live.txAtDump !== undefined) lazyBytes = Math.max(0, (await this.o.traffic.txBytes()) - live.txAtDump);
        this.o.log.info({ migrationId, exitCode: code, lazyBytes }, 'lazy checkpoint done: the destination has every page');
        this.checkpoints.delete(migrationId);
      } else if (isAlive(side.checkpoint)) {
        throw new CommandError('BUSY', 'the destination is still pulling pages');
      }
      const runc = this.c.runc;
      if (await runc.state(side.workloadId)) await runc.delete(side.workloadId, true);
      const record = this.c.record(side.workloadId);
      // the namespace and the files have nothing to do with each other: removed side by side
      await Promise.all([
        record?.netns ? tearDownNetwork(record.netns) : undefined,
        side.sharedRootfs ? rm(side.imagesDir, { recursive: true, force: true }) : this.c.roots.removeContainerDir(record ? this.c.pool(record.spec.pool) : undefined, side.containerDir),
      ]);
      await this.c.forget(side.workloadId);
      await this.o.sides.remove(migrationId);
      timer.lap('container, network and files removed');
      this.o.log.info({ migrationId, workload: side.workloadId }, 'migrated away: nothing of it remains here');
      return { done: true, ...(note ? { note } : {}), ...(lazyBytes === undefined ? {} : { lazyBytes }), ...(lazyMs === undefined ? {} : { lazyMs }), steps: timer.steps };
    });
  }
}
