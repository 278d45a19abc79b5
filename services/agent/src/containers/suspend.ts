import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { HostId, SuspendedImage, WorkloadSpec, type ContainerStatus } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import type { PoolConfig } from '../config.ts';
import { criuLogTail } from '../migration/common.ts';
import { Reverter } from '../migration/reverter.ts';
import { rearmCheckpointTimerfds } from '../migration/timerfd-images.ts';
import { CommandError } from './errors.ts';
import { announce, planNetwork, removeCriuLocks, setUpNetwork, tearDownNetwork, type NetworkPlan } from './network.ts';
import type { ContainerRecord } from './records.ts';
import type { ContainerAccess } from './access.ts';
import type { RootfsStore } from './rootfs.ts';
import type { Runc } from './runc.ts';

const DUMP_TIMEOUT_MS = 300_000;
const RESTORE_TIMEOUT_MS = 300_000;

/** What suspend and resume use of the container manager (ContainerManager has it all). */
export interface SuspendContainers extends ContainerAccess {
  readonly runc: Pick<Runc, 'checkpoint' | 'state' | 'hasState' | 'resume' | 'delete' | 'detached'>;
  readonly netnsPrefix: string;
  /** removes a container's pool directory as its pool's mode needs (a btrfs subvolume root, or files) */
  readonly roots: Pick<RootfsStore, 'removeContainerDir'>;
  writeBundleConfig(spec: WorkloadSpec, rootfs: string, netns: string): Promise<void>;
}

export interface ContainerSuspendsOptions {
  hostId: string;
  /** this host's storage pools (where a retried suspend or a delete looks for a marker) */
  pools: PoolConfig[];
  containers: SuspendContainers;
  log: Logger;
}

/**
 * What the pool keeps next to a suspended container's images (`<pool>/containers/<id>/suspended.json`):
 * the checkpoint as the scheduler's record holds it, plus the spec. It makes suspend idempotent (a
 * retried suspend whose first answer was lost finds it), lets another host on a shared pool check
 * what it resumes, and tells a delete what to remove on a host that no longer has the container.
 */
export const SuspendMarker = SuspendedImage.extend({ spec: WorkloadSpec, hostId: HostId });
export type SuspendMarker = z.infer<typeof SuspendMarker>;

/** `<pool>/containers/<id>`: the root filesystem, the images (`suspended/`) and the marker. */
export function suspendPaths(pool: PoolConfig, id: string) {
  const dir = join(pool.path, 'containers', id);
  return { dir, rootfs: join(dir, 'rootfs'), images: join(dir, 'suspended'), marker: join(dir, 'suspended.json') };
}

async function readMarker(file: string): Promise<SuspendMarker | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const parsed = SuspendMarker.safeParse(JSON.parse(text));
  if (!parsed.success) throw new CommandError('RUNTIME_ERROR', `unreadable suspend marker ${file}`);
  return parsed.data;
}

/**
 * Suspend to disk and resume (Xen's `xl save` / `xl restore`, OpenVZ's `vzctl suspend`): the
 * container's processes are checkpointed by CRIU (through runc) into its pool and stopped; its
 * namespace, cgroup and record on this host go, its root filesystem and the images stay. A resume
 * on this host — or, on a shared pool, on any host that mounts it — restores them with their memory
 * and removes the images once the workload runs (nothing is left behind; the next suspend writes a
 * fresh set). Both run under the container's mutex and are idempotent per epoch.
 */
export class ContainerSuspends {
  private readonly c: SuspendContainers;

  constructor(private readonly o: ContainerSuspendsOptions) {
    this.c = o.containers;
  }

  suspend(id: string, epoch: number): Promise<SuspendMarker> {
    return this.c.exclusive(id, async () => {
      const record = this.c.record(id);
      if (!record) {
        // suspended already (a retried request whose answer was lost): the same answer
        const done = await this.findMarker(id);
        if (done && done.epoch === epoch && done.hostId === this.o.hostId) return done;
        throw new CommandError('NOT_FOUND', `no container ${id} on host ${this.o.hostId}`);
      }
      if (record.epoch !== epoch) throw new CommandError('CONFLICT', `${id} is at epoch ${record.epoch} here, not ${epoch}`);
      const runcState = await this.c.runc.state(id);
      if (record.state !== 'running' || runcState?.status !== 'running') {
        throw new CommandError('CONFLICT', `${id} is ${record.state} here (runc: ${runcState?.status ?? 'none'}): only a running container can be suspended`);
      }
      const pool = this.c.pool(record.spec.pool);
      if (!pool) throw new CommandError('POOL_MISSING', `host ${this.o.hostId} has no storage pool ${record.spec.pool}`);
      const paths = suspendPaths(pool, id);
      const plan = record.netns ? this.plan(record.netns, record) : null;
      await rm(paths.marker, { force: true });
      await rm(paths.images, { recursive: true, force: true });
      await mkdir(paths.images, { recursive: true });
      const started = performance.now();
      await Reverter.run(
        async (revert) => {
          // A failed dump leaves CRIU's network lock in place and may leave the cgroup frozen:
          // the container would run unreachable, or not at all. Undone, it runs on as before.
          revert.add(() => rm(paths.images, { recursive: true, force: true }), 'images');
          revert.add(() => this.unfreeze(id, plan), 'thaw and network unlock');
          await this.c.runc.checkpoint(['--image-path', paths.images, '--work-path', paths.images, '--tcp-established', id], DUMP_TIMEOUT_MS).catch(async (err: unknown) => {
            const tail = criuLogTail(await readFile(join(paths.images, 'dump.log'), 'utf8').catch(() => ''), /Error/, 2);
            throw new CommandError('RUNTIME_ERROR', `suspending ${id} on ${this.o.hostId}: checkpoint failed: ${tail || (err as Error).message}`);
          });
        },
        (what, err) => this.o.log.warn({ err, workload: id, undo: what }, 'undoing a failed suspend step failed'),
      );
      const dumpMs = performance.now() - started;
      // Dumped: the processes are gone (runc checkpoint without --leave-running ends them).
      if (await this.c.runc.hasState(id)) await this.c.runc.delete(id, true).catch(() => undefined);
      if (record.netns) await tearDownNetwork(record.netns);
      const marker: SuspendMarker = {
        hostId: this.o.hostId,
        pool: pool.id,
        shared: pool.shared,
        imagesDir: paths.images,
        bytes: await bytesOf(paths.images),
        at: Date.now(),
        epoch: record.epoch,
        spec: record.spec,
      };
      await writeFile(`${paths.marker}.tmp`, JSON.stringify(marker, null, 2));
      await rename(`${paths.marker}.tmp`, paths.marker);
      // the host holds nothing of it now but the pool's files: a suspended workload has no host
      await this.c.forget(id);
      this.o.log.info({ workload: id, images: paths.images, bytes: marker.bytes, dumpMs: Math.round(dumpMs) }, 'container suspended to disk');
      return marker;
    });
  }

  resume(spec: WorkloadSpec, epoch: number, suspendedOn: string): Promise<ContainerStatus> {
    const id = spec.id;
    return this.c.exclusive(id, async () => {
      const existing = this.c.record(id);
      if (existing?.epoch === epoch && existing.templateVersion === 'resumed' && existing.state !== 'running') {
        // an earlier try of this resume died half-way (agent killed): what it left goes, then again
        if (await this.c.runc.hasState(id)) await this.c.runc.delete(id, true);
        if (existing.netns) await tearDownNetwork(existing.netns);
        await this.c.forget(id);
      } else if (existing) {
        // resumed already (a retried request whose answer was lost)
        if (existing.epoch === epoch && existing.state === 'running') return this.c.statusOfRecord(existing);
        throw new CommandError('CONFLICT', `host ${this.o.hostId} holds ${id} at epoch ${existing.epoch} (${existing.state}); refusing to resume it at ${epoch}`);
      }
      const pool = this.c.pool(spec.pool);
      if (!pool) throw new CommandError('POOL_MISSING', `host ${this.o.hostId} has no storage pool ${spec.pool}`);
      const paths = suspendPaths(pool, id);
      const marker = await readMarker(paths.marker);
      if (!marker) {
        const where = suspendedOn === this.o.hostId ? '' : ` (suspended on ${suspendedOn}: is pool ${pool.id} really shared with it?)`;
        throw new CommandError('NOT_FOUND', `no suspended checkpoint of ${id} in pool ${pool.id} on ${this.o.hostId}${where}`);
      }
      if (marker.epoch >= epoch) throw new CommandError('CONFLICT', `the checkpoint of ${id} is at epoch ${marker.epoch}; a resume must run it at a later one, not ${epoch}`);
      if (!(await isDir(paths.rootfs))) throw new CommandError('NOT_FOUND', `no root filesystem of ${id} in pool ${pool.id} on ${this.o.hostId}`);

      const netns = `${this.c.netnsPrefix}-${id}-${randomBytes(4).toString('hex')}`;
      const plan = this.plan(netns, { spec });
      const bundle = this.c.bundle(id);
      const started = performance.now();
      const running = await Reverter.run(
        async (revert) => {
          // journaled before the namespace exists: an agent killed mid-resume leaves a record
          // that names it, and the reconciler removes it (the images stay for another try)
          const journaled = await this.c.save({
            spec,
            epoch,
            state: 'created',
            templateVersion: 'resumed',
            rootfs: paths.rootfs,
            netns,
            pid: null,
            startedAt: null,
            exit: null,
            createdAt: Date.now(),
          });
          revert.add(() => this.c.forget(id), 'record');
          await setUpNetwork(plan);
          revert.add(() => tearDownNetwork(netns), 'network namespace');
          await this.c.writeBundleConfig(spec, paths.rootfs, netns);
          // CRIU would bring expired periodic timers back disarmed (docs/migration.md, Timers)
          const rearmed = await rearmCheckpointTimerfds(paths.images);
          if (await this.c.runc.hasState(id)) await this.c.runc.delete(id, true);
          revert.add(() => this.c.runc.delete(id, true).catch(() => undefined), 'runc state');
          const workDir = join(bundle.dir, `resume-${Date.now()}`);
          await mkdir(workDir, { recursive: true });
          await rm(bundle.pidFile, { force: true });
          await this.c.runc
            .detached(
              ['restore', '--detach', '--image-path', paths.images, '--work-path', workDir, '--tcp-established', '--bundle', bundle.dir, '--pid-file', bundle.pidFile, id],
              bundle.consoleLog,
              RESTORE_TIMEOUT_MS,
            )
            .catch(async (err: unknown) => {
              const tail = criuLogTail(await readFile(join(workDir, 'restore.log'), 'utf8').catch(() => ''), /Error|error/, 3);
              throw new CommandError('RUNTIME_ERROR', `resuming ${id} on ${this.o.hostId}: restore failed: ${tail || (err as Error).message}`);
            });
          const pid = Number((await readFile(bundle.pidFile, 'utf8')).trim());
          if (rearmed > 0) this.o.log.info({ workload: id, rearmed }, 'expired periodic timers re-armed in the checkpoint');
          return this.c.save({ ...journaled, state: 'running', pid, startedAt: Date.now() });
        },
        (what, err) => this.o.log.warn({ err, workload: id, undo: what }, 'undoing a failed resume step failed'),
      );
      void announce(plan); // bridges that learned the MAC elsewhere learn it here now
      // it runs from memory now: the images (and the marker that names them) go
      await rm(paths.marker, { force: true });
      await rm(paths.images, { recursive: true, force: true });
      this.o.log.info({ workload: id, epoch, from: marker.hostId, pid: running.pid, restoreMs: Math.round(performance.now() - started) }, 'container resumed from disk');
      return this.c.statusOfRecord(running);
    });
  }

  /**
   * A delete of a suspended workload on a host that no longer has the container: its directory in
   * the pool (root filesystem, images, marker) goes. Only a directory that holds a marker, so a
   * delete never removes a root filesystem some host runs from. Returns whether one was removed.
   */
  discard(id: string): Promise<boolean> {
    return this.c.exclusive(id, async () => {
      if (this.c.record(id)) return false;
      let removed = false;
      for (const pool of this.o.pools) {
        const paths = suspendPaths(pool, id);
        if (!(await readMarker(paths.marker).catch(() => null))) continue;
        await this.c.roots.removeContainerDir(pool, paths.dir);
        this.o.log.info({ workload: id, pool: pool.id }, 'suspended container discarded');
        removed = true;
      }
      return removed;
    });
  }

  private async findMarker(id: string): Promise<SuspendMarker | null> {
    for (const pool of this.o.pools) {
      const marker = await readMarker(suspendPaths(pool, id).marker);
      if (marker) return marker;
    }
    return null;
  }

  private plan(netns: string, record: Pick<ContainerRecord, 'spec'>): NetworkPlan {
    try {
      return planNetwork(netns, record.spec.networks, this.c.networks());
    } catch (err) {
      throw new CommandError('NETWORK_MISSING', (err as Error).message);
    }
  }

  /** After a failed dump: the container runs and answers again. */
  private async unfreeze(id: string, plan: NetworkPlan | null): Promise<void> {
    if ((await this.c.runc.state(id))?.status === 'paused') await this.c.runc.resume(id);
    if (plan?.netns) await removeCriuLocks(plan.netns);
  }
}

async function bytesOf(dir: string): Promise<number> {
  const du = await execa('du', ['-sb', dir], { reject: false, timeout: 60_000 });
  const bytes = Number(du.stdout.split('\t')[0]);
  return du.exitCode === 0 && Number.isFinite(bytes) ? bytes : 0;
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
