import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { ContainerExit, ContainerStatus, NetworkReport, SupersededCopy, WorkloadSpec } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import type { PoolConfig } from '../config.ts';
import { cgroupVersion, sampleCgroup, type CgroupVersion } from './cgroups.ts';
import { CommandError } from './errors.ts';
import { KeyedMutex } from './keyed-mutex.ts';
import { consoleLogFile } from '../logs/console-log.ts';
import { announce, planNetwork, setUpNetwork, tearDownNetwork } from './network.ts';
import { buildOciConfig } from './oci.ts';
import { diskLimitBytes, RootfsStore } from './rootfs.ts';
import type { ContainerRecord, RecordStore } from './records.ts';
import { Runc } from './runc.ts';
import type { Template, TemplateRegistry } from './templates.ts';

export interface ContainerManagerOptions {
  hostId: string;
  cgroupParent: string;
  netnsPrefix: string;
  pools: PoolConfig[];
  runc: Runc;
  records: RecordStore;
  templates: TemplateRegistry;
  /** the networks this host is attached to right now */
  networks: () => NetworkReport[];
  diskUsageIntervalMs: number;
  log: Logger;
}

interface CpuSample {
  cpuNanos: number;
  at: number;
  percent: number;
}

const DESTROY_GRACE_MS = 3_000;
const WANTED_OPEN_FILES = 65_536;

/** min(65536, this process's hard RLIMIT_NOFILE), read from /proc/self/limits. */
async function containerOpenFilesLimit(): Promise<number> {
  const limits = await readFile('/proc/self/limits', 'utf8');
  const hard = Number(/^Max open files\s+\S+\s+(\S+)/m.exec(limits)?.[1]);
  return Number.isFinite(hard) && hard > 0 ? Math.min(WANTED_OPEN_FILES, hard) : 1024;
}

/**
 * Container lifecycle on this host: create (private copy of a template in a pool), start (network
 * namespace + runc), stop, destroy, and noticing containers that exit on their own (or are
 * OOM-killed). One operation per container at a time; every operation is idempotent.
 */
export class ContainerManager {
  private readonly records = new Map<string, ContainerRecord>();
  private readonly mutex = new KeyedMutex();
  private readonly cpu = new Map<string, CpuSample>();
  private readonly disk = new Map<string, { bytes: number; at: number }>();
  private readonly cgroups: CgroupVersion = cgroupVersion();
  /** root filesystems in the pools: copy-on-write snapshots with quotas on btrfs pools, copies elsewhere */
  readonly roots: RootfsStore;

  constructor(private readonly o: ContainerManagerOptions) {
    this.roots = new RootfsStore(o.log);
  }

  async init(): Promise<void> {
    for (const record of await this.o.records.loadAll()) this.records.set(record.spec.id, record);
    await this.reconcile();
  }

  // ---- shared with the migration code (same host, same records, same one-at-a-time rule) ----

  cgroupsPath(id: string): string {
    return `${this.o.cgroupParent}/${id}`;
  }

  /**
   * The container's bundle files; its console log is in its workload's directory on its pool
   * (logs/console-log.ts), which moves with it, or in the bundle while no record names a pool.
   */
  bundle(id: string) {
    const dir = this.o.records.bundleDir(id);
    const record = this.records.get(id);
    const consoleLog = record ? consoleLogFile(dirname(record.rootfs)) : join(dir, 'console.log');
    return { dir, pidFile: join(dir, 'container.pid'), consoleLog, criuConfig: join(dir, 'criu.conf') };
  }

  /**
   * The container's CRIU options file (runc has no flags for them; it hands CRIU the file named
   * by the `org.criu.config` annotation). A migration adds its page-stream TLS lines for a while.
   * nftables lock: ~90 ms faster restore than the default iptables lock here (shared DESIGN.md).
   * file-locks: a VPS's processes hold flock()s and POSIX locks (runit's runsv on supervise/lock,
   * cron, dpkg, databases), which CRIU refuses to dump without it; runc always sends
   * file_locks=false over RPC, the file overrides it.
   */
  async writeCriuConfig(id: string, extra = ''): Promise<void> {
    await writeFile(this.bundle(id).criuConfig, `network-lock nftables\nfile-locks\n${extra}`);
  }

  template(name: string): Template | undefined {
    return this.o.templates.get(name);
  }

  get runc(): Runc {
    return this.o.runc;
  }

  get netnsPrefix(): string {
    return this.o.netnsPrefix;
  }

  networks(): NetworkReport[] {
    return this.o.networks();
  }

  pool(id: string): PoolConfig | undefined {
    return this.o.pools.find((p) => p.id === id);
  }

  exclusive<T>(id: string, task: () => Promise<T>): Promise<T> {
    return this.mutex.run(id, task);
  }

  record(id: string): ContainerRecord | undefined {
    return this.records.get(id);
  }

  async save(record: ContainerRecord): Promise<ContainerRecord> {
    await this.o.records.save(record);
    this.records.set(record.spec.id, record);
    return record;
  }

  /** Forgets a container whose processes left this host (migrated away); its files are the caller's. */
  async forget(id: string): Promise<void> {
    await this.o.records.remove(id);
    this.records.delete(id);
    this.disk.delete(id);
    this.cpu.delete(id);
  }

  /** Writes the bundle's config.json for running (or restoring) `spec` from `rootfs` in `netns`. */
  async writeBundleConfig(spec: WorkloadSpec, rootfs: string, netns: string): Promise<void> {
    const bundle = this.bundle(spec.id);
    await mkdir(bundle.dir, { recursive: true });
    const config = buildOciConfig(spec, {
      rootfs,
      netnsPath: `/run/netns/${netns}`,
      cgroupsPath: this.cgroupsPath(spec.id),
      maxOpenFiles: await containerOpenFilesLimit(),
      criuConfig: bundle.criuConfig,
    });
    await this.writeCriuConfig(spec.id);
    await writeFile(join(bundle.dir, 'config.json'), JSON.stringify(config, null, 2));
  }

  statusOfRecord(record: ContainerRecord): Promise<ContainerStatus> {
    return this.statusOf(record);
  }

  private require(id: string): ContainerRecord {
    const record = this.records.get(id);
    if (!record) throw new CommandError('NOT_FOUND', `no container ${id} on host ${this.o.hostId}`);
    return record;
  }

  create(spec: WorkloadSpec, epoch: number): Promise<ContainerStatus> {
    return this.mutex.run(spec.id, async () => {
      const existing = this.records.get(spec.id);
      if (existing) {
        if (JSON.stringify(existing.spec) === JSON.stringify(spec) && existing.epoch === epoch) return this.statusOf(existing);
        throw new CommandError('CONFLICT', `container ${spec.id} already exists here with another spec or epoch`);
      }
      const template = this.o.templates.get(spec.template);
      if (!template) throw new CommandError('TEMPLATE_MISSING', `host ${this.o.hostId} has no template ${spec.template}`);
      const pool = this.o.pools.find((p) => p.id === spec.pool);
      if (!pool) throw new CommandError('POOL_MISSING', `host ${this.o.hostId} has no storage pool ${spec.pool}`);
      const attached = new Set(this.o.networks().map((n) => n.name));
      const missing = spec.networks.filter((a) => !attached.has(a.network)).map((a) => a.network);
      if (missing.length > 0) throw new CommandError('NETWORK_MISSING', `host ${this.o.hostId} is not attached to ${missing.join(', ')}`);

      const started = performance.now();
      const { rootfs, mode } = await this.roots.create(pool, template, spec.id, diskLimitBytes(spec)).catch((err: unknown) => {
        throw new CommandError('RUNTIME_ERROR', (err as Error).message);
      });
      const record = await this.save({
        spec,
        epoch,
        state: 'created',
        templateVersion: template.version,
        rootfs,
        netns: null,
        pid: null,
        startedAt: null,
        exit: null,
        createdAt: Date.now(),
      });
      this.o.log.info({ workload: spec.id, rootfs, mode, ms: Math.round(performance.now() - started), template: `${template.name}@${template.version}` }, 'container created');
      return this.statusOf(record);
    });
  }

  start(id: string, epoch?: number): Promise<ContainerStatus> {
    return this.mutex.run(id, async () => {
      let record = this.require(id);
      if (epoch !== undefined && epoch < record.epoch) throw new CommandError('CONFLICT', `${id} is at epoch ${record.epoch} here; refusing to start it at ${epoch}`);
      // the new generation is on disk before a process of it runs (or, already running, so it is not taken for a stale copy)
      if (epoch !== undefined && epoch > record.epoch) record = await this.save({ ...record, epoch });
      const current = await this.o.runc.state(id);
      if (current?.status === 'running' && record.state === 'running') return this.statusOf(record);
      if (current) await this.o.runc.delete(id, true);
      if (record.netns) await tearDownNetwork(record.netns);

      const netns = `${this.o.netnsPrefix}-${id}-${randomBytes(4).toString('hex')}`;
      let plan;
      try {
        plan = planNetwork(netns, record.spec.networks, this.o.networks());
      } catch (err) {
        throw new CommandError('NETWORK_MISSING', (err as Error).message);
      }
      const bundle = this.bundle(id);
      // Journal the namespace before creating it: an agent killed mid-start leaves a record that
      // names it, so the next start, stop or destroy removes it.
      const journaled = await this.save({ ...record, netns });
      await setUpNetwork(plan);
      try {
        await this.writeBundleConfig(record.spec, record.rootfs, netns);
        await rm(bundle.pidFile, { force: true });
        await this.o.runc.runDetached(id, bundle.dir, bundle.pidFile, bundle.consoleLog);
        const pid = Number((await readFile(bundle.pidFile, 'utf8')).trim());
        const started = await this.save({ ...journaled, state: 'running', pid, startedAt: Date.now(), exit: null });
        this.cpu.delete(id);
        // A gratuitous ARP: bridges that learned this MAC elsewhere (it ran on another host
        // before a failover or a cold move) learn it here now, not when their entry ages out.
        void announce(plan);
        this.o.log.info({ workload: id, pid, netns }, 'container started');
        return this.statusOf(started);
      } catch (err) {
        await this.o.runc.delete(id, true).catch(() => undefined);
        await tearDownNetwork(netns);
        await this.save({ ...journaled, netns: null });
        const tail = await readFile(bundle.consoleLog, 'utf8').then(
          (t) => t.split('\n').slice(-5).join('\n'),
          () => '',
        );
        throw new CommandError('RUNTIME_ERROR', `starting ${id} failed: ${(err as Error).message}`, { consoleTail: tail });
      }
    });
  }

  stop(id: string, graceMs: number, reason: 'stopped' | 'fenced' = 'stopped'): Promise<ContainerStatus> {
    return this.mutex.run(id, async () => this.statusOf(await this.stopLocked(this.require(id), graceMs, reason)));
  }

  /**
   * The cluster says these copies were superseded (restarted or moved elsewhere while this host was
   * away): kill each one that, by this host's own record, is indeed not the current copy — owned
   * elsewhere, or at an older epoch. Never one a migration is moving (that protocol decides), nor
   * one this host holds at the cluster's epoch or newer (the cluster's view is then the stale one).
   * Discarding the stopped copy stays the scheduler's decision. Returns the ids stopped.
   */
  async stopSuperseded(copies: SupersededCopy[], selfHostId: string): Promise<string[]> {
    const stopped: string[] = [];
    for (const copy of copies) {
      await this.mutex.run(copy.id, async () => {
        const record = this.records.get(copy.id);
        if (!record || !isSuperseded(record, copy, selfHostId)) return;
        this.o.log.warn({ workload: copy.id, epoch: record.epoch, owner: copy.owner, ownerEpoch: copy.epoch }, 'the cluster runs a newer copy elsewhere: stopping this one');
        if (record.state === 'frozen') await this.o.runc.resume(copy.id).catch(() => undefined); // a frozen task only dies once thawed
        await this.stopLocked(record, 0, 'superseded');
        stopped.push(copy.id);
      });
    }
    return stopped;
  }

  private async stopLocked(record: ContainerRecord, graceMs: number, reason: ContainerExit['reason'] = 'stopped'): Promise<ContainerRecord> {
    const id = record.spec.id;
    const isRunning = async () => (await this.o.runc.state(id))?.status === 'running';
    if (await isRunning()) {
      if (graceMs > 0) {
        await this.o.runc.kill(id, 'TERM').catch(() => undefined);
        for (let waited = 0; waited < graceMs && (await isRunning()); waited += 100) await sleep(100);
      }
      if (await isRunning()) {
        await this.o.runc.kill(id, 'KILL').catch(() => undefined);
        for (let waited = 0; waited < 10_000 && (await isRunning()); waited += 50) await sleep(50);
      }
    }
    return this.finishRun(record, reason);
  }

  /**
   * After the container's processes are gone: decide why (the cgroup still counts OOM kills until
   * runc deletes it), release runc's state, the cgroup and the network namespace.
   */
  private async finishRun(record: ContainerRecord, reason: ContainerExit['reason']): Promise<ContainerRecord> {
    const id = record.spec.id;
    const sample = await sampleCgroup(this.cgroupsPath(id), this.cgroups).catch(() => null);
    const why: ContainerExit['reason'] = sample && sample.oomKills > 0 ? 'oom-killed' : reason;
    if (await this.o.runc.state(id)) await this.o.runc.delete(id, true);
    if (record.netns) await tearDownNetwork(record.netns);
    this.cpu.delete(id);
    const wasRunning = record.state === 'running' || record.state === 'frozen';
    const exit = wasRunning ? { reason: why, at: Date.now() } : record.exit;
    if (wasRunning) this.o.log.info({ workload: id, reason: why }, 'container stopped');
    return this.save({ ...record, state: record.state === 'created' ? 'created' : 'stopped', netns: null, pid: null, exit });
  }

  destroy(id: string, keepRootfs = false): Promise<{ id: string; destroyed: boolean }> {
    return this.mutex.run(id, async () => {
      const record = this.records.get(id);
      if (!record) {
        if (await this.o.runc.state(id)) await this.o.runc.delete(id, true);
        return { id, destroyed: false };
      }
      await this.stopLocked(record, DESTROY_GRACE_MS);
      if (!keepRootfs) await this.roots.removeContainerDir(this.pool(record.spec.pool), dirname(record.rootfs));
      await this.o.records.remove(id);
      this.records.delete(id);
      this.disk.delete(id);
      this.o.log.info({ workload: id }, 'container destroyed');
      return { id, destroyed: true };
    });
  }

  /** Fencing: pause the container's processes (its host lost its lease). */
  freeze(id: string): Promise<ContainerStatus> {
    return this.mutex.run(id, async () => {
      const record = this.require(id);
      if (record.state !== 'running') return this.statusOf(record);
      await this.o.runc.pause(id);
      this.o.log.warn({ workload: id }, 'container frozen (fencing)');
      return this.statusOf(await this.save({ ...record, state: 'frozen' }));
    });
  }

  /** The cluster says this frozen copy is still the one: it runs on. */
  thaw(id: string): Promise<ContainerStatus> {
    return this.mutex.run(id, async () => {
      const record = this.require(id);
      if (record.state !== 'frozen') return this.statusOf(record);
      await this.o.runc.resume(id);
      this.o.log.info({ workload: id }, 'container thawed');
      return this.statusOf(await this.save({ ...record, state: 'running' }));
    });
  }

  /**
   * Failover: take over a workload whose host died, from its root filesystem on a shared pool
   * (nothing is copied): a record at the new epoch, then a normal start.
   */
  async adopt(spec: WorkloadSpec, epoch: number, fromHost: string): Promise<ContainerStatus> {
    const created = await this.mutex.run(spec.id, async () => {
      const existing = this.records.get(spec.id);
      if (existing) {
        if (existing.epoch === epoch) return existing;
        throw new CommandError('CONFLICT', `host ${this.o.hostId} holds ${spec.id} at epoch ${existing.epoch}, not ${epoch}`);
      }
      const pool = this.o.pools.find((p) => p.id === spec.pool);
      if (!pool) throw new CommandError('POOL_MISSING', `host ${this.o.hostId} has no storage pool ${spec.pool}`);
      const rootfs = join(pool.path, 'containers', spec.id, 'rootfs');
      if (!(await dirExists(rootfs))) {
        throw new CommandError('MIGRATION_FAILED', `no root filesystem of ${spec.id} in pool ${pool.id} here (is it really shared with ${fromHost}?)`);
      }
      this.o.log.warn({ workload: spec.id, fromHost, epoch }, 'adopting a workload from a dead host');
      return this.save({ spec, epoch, state: 'created', templateVersion: 'adopted', rootfs, netns: null, pid: null, startedAt: null, exit: null, createdAt: Date.now() });
    });
    return created.state === 'running' ? this.statusOf(created) : this.start(spec.id);
  }

  /** One copy's status, with its spec (what the cluster rebuilds a lost workload record from). */
  async status(id: string): Promise<ContainerStatus> {
    const record = this.require(id);
    return { ...(await this.statusOf(record)), spec: record.spec };
  }

  /**
   * Records that the cluster generation `generation` confirmed these copies as current (the
   * scheduler sends it when a report shows a copy in line with its record but stamped otherwise).
   * A copy with a command under way is skipped: the next report brings it again.
   */
  async stamp(generation: string, ids: string[]): Promise<{ stamped: string[] }> {
    const stamped: string[] = [];
    for (const id of ids) {
      if (this.mutex.busy(id)) continue;
      await this.mutex.run(id, async () => {
        const record = this.records.get(id);
        if (!record || record.generation === generation) return;
        await this.save({ ...record, generation });
        stamped.push(id);
      });
    }
    return { stamped };
  }

  /** Every container's recorded state (metrics). */
  states(): ContainerRecord['state'][] {
    return [...this.records.values()].map((r) => r.state);
  }

  list(): Promise<ContainerStatus[]> {
    return Promise.all([...this.records.values()].map((r) => this.statusOf(r)));
  }

  /**
   * Notices containers that stopped without being asked (exit, crash, OOM kill) and cleans up
   * after them, and removes namespaces journaled by a start that never finished (agent killed).
   * Containers with a command in progress are left to the next round: this runs before every
   * capacity report, and a report waiting behind a long create or start would let the lease lapse.
   */
  async reconcile(): Promise<void> {
    const states = new Map((await this.o.runc.list()).map((s) => [s.id, s.status]));
    const needsCleanup = (record: ContainerRecord, runcStatus: string | undefined) =>
      record.state === 'migrating' || record.state === 'frozen' ? false : record.state === 'running' ? runcStatus !== 'running' : record.netns !== null;
    for (const record of this.records.values()) {
      if (this.mutex.busy(record.spec.id)) continue;
      // frozen behind our back: the fence guard did it (the agent was not there to)
      if (record.state === 'running' && states.get(record.spec.id) === 'paused') {
        await this.mutex.run(record.spec.id, async () => {
          const current = this.records.get(record.spec.id);
          if (current?.state === 'running' && (await this.o.runc.state(current.spec.id))?.status === 'paused') await this.save({ ...current, state: 'frozen' });
        });
        continue;
      }
      if (!needsCleanup(record, states.get(record.spec.id))) continue;
      await this.mutex.run(record.spec.id, async () => {
        const current = this.records.get(record.spec.id);
        if (!current || !needsCleanup(current, (await this.o.runc.state(current.spec.id))?.status)) return;
        await this.finishRun(current, 'exited');
      });
    }
  }

  /** The fence guard stopped these while no agent ran: their exit is fencing, not their own. */
  async markFenced(ids: string[]): Promise<void> {
    await this.reconcile();
    for (const id of ids) {
      await this.mutex.run(id, async () => {
        const record = this.records.get(id);
        if (record?.state === 'stopped' && record.exit?.reason === 'exited') await this.save({ ...record, exit: { ...record.exit, reason: 'fenced' } });
      });
    }
  }

  /**
   * Disk usage: on copy-on-write pools from the quota groups, every call (cheap); elsewhere
   * measured with du, so only every diskUsageIntervalMs per container.
   */
  async refreshDiskUsage(): Promise<void> {
    const now = Date.now();
    const fromQuota = await this.roots.usage(this.o.pools).catch((err: unknown) => {
      this.o.log.warn({ err }, "reading the pools' quota groups failed");
      return new Map<string, number>();
    });
    for (const record of this.records.values()) {
      const quota = fromQuota.get(record.spec.id);
      if (quota !== undefined) {
        this.disk.set(record.spec.id, { bytes: quota, at: now });
        continue;
      }
      const known = this.disk.get(record.spec.id);
      if (known && now - known.at < this.o.diskUsageIntervalMs) continue;
      const du = await execa('du', ['-sb', record.rootfs], { reject: false, timeout: 60_000 });
      const bytes = Number(du.stdout.split('\t')[0]);
      if (du.exitCode === 0 && Number.isFinite(bytes)) this.disk.set(record.spec.id, { bytes, at: now });
    }
  }

  private async statusOf(record: ContainerRecord): Promise<ContainerStatus> {
    const id = record.spec.id;
    let usage: ContainerStatus['usage'] = null;
    if (record.state === 'running') {
      const sample = await sampleCgroup(this.cgroupsPath(id), this.cgroups).catch(() => null);
      if (sample) {
        const now = Date.now();
        const previous = this.cpu.get(id);
        let percent = previous?.percent ?? 0;
        if (!previous) {
          this.cpu.set(id, { cpuNanos: sample.cpuNanos, at: now, percent });
        } else if (now - previous.at >= 500) {
          percent = Math.max(0, ((sample.cpuNanos - previous.cpuNanos) / ((now - previous.at) * 1e6)) * 100);
          this.cpu.set(id, { cpuNanos: sample.cpuNanos, at: now, percent });
        }
        usage = {
          memoryBytes: sample.memoryBytes,
          memoryLimitBytes: sample.memoryLimitBytes,
          cpuNanos: sample.cpuNanos,
          cpuPercent: Math.round(percent * 10) / 10,
          diskBytes: this.disk.get(id)?.bytes ?? null,
          pids: sample.pids,
        };
      }
    }
    return { id, state: record.state, epoch: record.epoch, pid: record.pid, startedAt: record.startedAt, exit: record.exit, usage, ...(record.generation ? { generation: record.generation } : {}) };
  }

  /** Destroys every container this agent knows (lab teardown, decommissioning); returns how many. */
  async destroyAll(): Promise<number> {
    const ids = [...this.records.keys()];
    await Promise.all(ids.map((id) => this.destroy(id)));
    for (const leftover of await this.o.runc.list()) await this.o.runc.delete(leftover.id, true);
    return ids.length;
  }
}

/**
 * Whether this host's copy is, by its own record, one the cluster has superseded and still runs:
 * owned elsewhere or at an older epoch, and running or frozen — never one a migration is moving.
 */
export function isSuperseded(record: Pick<ContainerRecord, 'state' | 'epoch'>, copy: SupersededCopy, selfHostId: string): boolean {
  if (record.state !== 'running' && record.state !== 'frozen') return false;
  return copy.owner !== selfHostId || record.epoch < copy.epoch;
}

async function dirExists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
