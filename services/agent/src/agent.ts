import type { NatsConnection } from 'nats';
import type { CapacityReport, CpuInfo, CriuReport, StoragePoolReport } from '@ferry/protocol';
import { LeaseAck, subjects } from '@ferry/protocol';
import { decodeText, encodeJson, type Logger } from '@ferry/runtime';
import { join } from 'node:path';
import { Fencer } from './fencing.ts';
import { checkUnitGuard, ensureGuard } from './guard/launcher.ts';
import { bootId, monotonicMs, readGuardState, writeGuardState } from './guard/state.ts';
import { Lease } from './lease.ts';
import { serveCommands, type CommandServer } from './commands.ts';
import type { AgentConfig } from './config.ts';
import type { HostRuntime } from './host.ts';
import { ensureKdatCache } from './containers/criu-kdat.ts';
import { probeCriu, probePool, readCpu, readHostname, readLoad, readMemory } from './inventory/index.ts';
import { AGENT_VERSION } from './version.ts';
import { AgentMetrics } from './metrics.ts';
import { serveMetricsIfPossible, type MetricsServer } from '@ferry/runtime';
import { cgroupParentOf, metricsHostOf } from './config.ts';
import { PoolProbes } from './inventory/probes.ts';
import { StorageHeartbeats } from './storage/heartbeats.ts';
import { UsageHistory } from './usage/history.ts';
import { serveUsage } from './usage/server.ts';
import { OperateServer } from './containers/exec-server.ts';
import { serveLogs } from './logs/server.ts';

/**
 * The host agent: runs containers on command and publishes a capacity report every interval.
 * CPU identity is read once (it does not change while the host runs); CRIU is probed at start
 * and then rarely; memory, load, pools and containers are read for every report.
 */
export class Agent {
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private criuTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private criu: CriuReport | null = null;
  private readonly missingPools = new Set<string>();
  private readonly probes: PoolProbes;
  private readonly startedAt = Date.now();
  private commands: CommandServer | undefined;
  private readonly lease: Lease;
  private readonly fencer: Fencer;
  private leaseTimer: NodeJS.Timeout | undefined;
  private guardWrite: Promise<void> = Promise.resolve();
  readonly metrics = new AgentMetrics();
  private metricsServer: MetricsServer | null = null;
  private guardWritten = -1;
  /** the second heartbeat channel: this host's heartbeat in its shared pools */
  private readonly storage: StorageHeartbeats;
  private storageTimer: NodeJS.Timeout | undefined;
  /** the last hour of usage, for the console's charts (usage/) */
  private readonly usage = new UsageHistory();
  /** exec and console sessions (containers/exec-server.ts) */
  private operate: OperateServer | undefined;

  private constructor(
    private readonly config: AgentConfig,
    private readonly log: Logger,
    private readonly nc: NatsConnection,
    private readonly cpu: CpuInfo,
    private readonly host: HostRuntime,
    private readonly boot: string,
    leaseValidUntil: number | undefined,
  ) {
    this.probes = new PoolProbes(config.hostId);
    this.lease = new Lease(monotonicMs, config.leaseMs, leaseValidUntil);
    const sharedPools = config.pools.filter((p) => p.shared);
    this.storage = new StorageHeartbeats(config.hostId, boot, sharedPools, monotonicMs, log.child({ part: 'storage-heartbeat' }));
    this.fencer = new Fencer(
      host.containers,
      this.lease,
      config.fenceAction,
      join(config.dataDir, 'fencing.json'),
      log.child({ part: 'fencing' }),
      (by) => this.metrics.fencing.inc({ by }),
      this.storage,
      () => this.lease.periodMs(),
      (pool) => sharedPools.some((p) => p.id === pool),
    );
    this.metrics.observe({ containerStates: () => host.containers.states(), leaseRemainingMs: () => this.lease.validUntilMs() - monotonicMs() });
  }

  static async start(config: AgentConfig, log: Logger, nc: NatsConnection, host: HostRuntime): Promise<Agent> {
    const cpu = await readCpu(config.cpuOverride);
    const boot = await bootId();
    const previous = await readGuardState(config.dataDir);
    const agent = new Agent(config, log, nc, cpu, host, boot, previous?.bootId === boot ? previous.validUntilMs : undefined);
    // the guard first: from here on, a dying agent leaves its HA containers guarded
    await agent.writeGuardState();
    // the lab starts its own guard; under systemd ferry-fence-guard.service is the guard (fenceGuard: unit)
    if (config.fenceGuard === 'unit') await checkUnitGuard(config.dataDir, log.child({ part: 'fence-guard' }));
    else await ensureGuard(config.dataDir, config.fenceGuardGraceMs, log.child({ part: 'fence-guard' }));
    host.migrations.onProgress = (event) => nc.publish(subjects.migrationProgress(event.migrationId, config.hostId), encodeJson(event));
    // daemons of migrations past their deadline stop, also those an earlier agent left running
    host.migrations.watchDeadlines();
    // exec and console for the API (before the commands: a checkpoint ends a container's sessions)
    agent.operate = new OperateServer(nc, config.hostId, host.containers, join(config.dataDir, 'operate'), log.child({ part: 'operate' }));
    await agent.operate.start();
    agent.commands = serveCommands(
      nc,
      config.hostId,
      { containers: host.containers, migrations: host.migrations, suspends: host.suspends, storage: agent.storage, operate: agent.operate },
      log.child({ part: 'commands' }),
      agent.metrics,
    );
    serveUsage(nc, config.hostId, agent.usage, log.child({ part: 'usage' }));
    serveLogs(nc, config.hostId, host.containers, log.child({ part: 'logs' }));
    agent.metricsServer = await serveMetricsIfPossible(agent.metrics.registry, metricsHostOf(config), config.metricsPort, log.child({ part: 'metrics' }));
    await agent.fencer.load();
    await agent.fencer.importGuardEvents(config.dataDir);
    agent.listenForAcks();
    agent.leaseTimer = setInterval(() => void agent.fencer.check().catch((err: unknown) => log.error({ err }, 'fencing check failed')), 200);
    if (agent.storage.active) {
      await agent.storage.beat();
      agent.storageTimer = setInterval(() => void agent.beat(), Math.min(config.reportIntervalMs, 1000));
    }
    await agent.refreshCriu();
    log.info({ cpu: { vendor: cpu.vendor, family: cpu.family, model: cpu.model, flags: cpu.flags.length }, criu: agent.criu }, 'agent started');
    agent.criuTimer = setInterval(() => void agent.refreshCriu(), config.criuProbeIntervalMs);
    agent.criuTimer.unref();
    agent.scheduleReport(0);
    return agent;
  }

  /** Schedulers acknowledge reports on ferry.host.<id>.lease; each acknowledgement renews the lease. */
  private listenForAcks(): void {
    this.nc.subscribe(subjects.lease(this.config.hostId), {
      callback: (err, msg) => {
        // an empty message is NATS saying no scheduler heard the report (503 no responders): no renewal
        if (err || msg.data.length === 0) return;
        const ack = LeaseAck.safeParse(
          (() => {
            try {
              return JSON.parse(decodeText(msg.data));
            } catch {
              return null;
            }
          })(),
        );
        if (!ack.success) {
          this.log.warn('malformed lease acknowledgement ignored');
          return;
        }
        this.lease.acknowledged(ack.data.seq, ack.data.leaseMs);
        if (ack.data.superseded.length) {
          void this.host.containers.stopSuperseded(ack.data.superseded, this.config.hostId).catch((err: unknown) => this.log.error({ err }, 'stopping superseded copies failed'));
        }
        void this.fencer.acknowledged(ack.data.seq);
        if (this.guardDeadline() !== this.guardWritten) void this.writeGuardState().catch((err: unknown) => this.log.error({ err }, 'writing the fence guard state failed'));
      },
    });
  }

  private async refreshCriu(): Promise<void> {
    try {
      // before the probe: a CRIU probing the kernel again on every run slows every freeze
      await ensureKdatCache(this.host.criu, this.log.child({ part: 'criu' }));
      this.criu = await probeCriu(this.host.criu);
      if (!this.criu) this.log.warn({ criu: this.config.criuPath }, 'no runnable CRIU: live migration unavailable on this host');
    } catch (err) {
      this.log.error({ err }, 'CRIU probe failed');
      this.criu = null;
    }
  }

  private scheduleReport(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      void this.publishReport()
        .catch((err: unknown) => this.log.error({ err }, 'capacity report failed'))
        .finally(() => this.scheduleReport(this.config.reportIntervalMs));
    }, delayMs);
  }

  private async readPools(): Promise<StoragePoolReport[]> {
    const probes = await Promise.all(this.config.pools.map((pool) => probePool(pool)));
    const pools: StoragePoolReport[] = [];
    for (const probe of probes) {
      if (probe.ok) {
        if (this.missingPools.delete(probe.pool.id)) this.log.info({ pool: probe.pool.id }, 'storage pool is back');
        const config = this.config.pools.find((p) => p.id === probe.pool.id)!;
        const shared = await this.probes.probe(config).catch((err: unknown) => {
          this.log.warn({ pool: config.id, err: (err as Error).message }, 'shared pool probe failed');
          return undefined;
        });
        pools.push(shared ? { ...probe.pool, probe: shared } : probe.pool);
      } else if (!this.missingPools.has(probe.id)) {
        this.missingPools.add(probe.id);
        this.log.warn({ pool: probe.id, error: probe.error }, 'storage pool unavailable; not reported');
      }
    }
    return pools;
  }

  async buildReport(): Promise<CapacityReport> {
    const { containers, networks, templates } = this.host;
    await containers.reconcile();
    await Promise.all([networks.refresh(), templates.refresh(), containers.refreshDiskUsage()]);
    const [memory, load, pools, statuses] = await Promise.all([readMemory(), readLoad(), this.readPools(), containers.list()]);
    return {
      v: 1,
      hostId: this.config.hostId,
      hostname: readHostname(),
      address: this.config.address,
      seq: this.seq++,
      sentAt: Date.now(),
      intervalMs: this.config.reportIntervalMs,
      agent: { version: AGENT_VERSION, pid: process.pid, startedAt: this.startedAt },
      cpu: this.cpu,
      memory,
      load,
      pools,
      networks: networks.current(),
      criu: this.criu,
      templates: templates.list(),
      containers: statuses,
      fencing: this.fencer.forReport(this.seq - 1),
      ...(this.storage.active ? { storage: { heartbeatOk: this.storage.okWithin(this.lease.periodMs()), peers: this.storage.peersReport() } } : {}),
    };
  }

  /** One storage heartbeat; while it gets through, the fence guard's deadline moves with it. */
  private async beat(): Promise<void> {
    try {
      await this.storage.beat();
      await this.writeGuardState();
    } catch (err) {
      this.log.error({ err }, 'storage heartbeat failed');
    }
  }

  /**
   * Until when the fence guard lets this host's HA containers run if the agent dies now: the
   * lease, or — while the heartbeat reaches storage and nobody declared this host failed — a lease
   * period after the last heartbeat (the agent is alive; its peers see it so). An agent that dies
   * stops both, and the guard fences a lease period after the later of the two.
   */
  private guardDeadline(): number {
    const lastOk = this.storage.lastOk();
    const byStorage = lastOk !== null && !this.storage.declaredFailed() ? lastOk + this.lease.periodMs() : -Infinity;
    return Math.max(this.lease.validUntilMs(), byStorage);
  }

  /** Tells the fence guard how long the lease holds (writes are serialized, the newest wins). */
  private writeGuardState(): Promise<void> {
    this.guardWrite = this.guardWrite.then(async () => {
      const validUntilMs = this.guardDeadline();
      if (validUntilMs === this.guardWritten) return;
      await writeGuardState(this.config.dataDir, {
        bootId: this.boot,
        validUntilMs,
        action: this.config.fenceAction,
        containersDir: join(this.config.dataDir, 'containers'),
        cgroupParent: cgroupParentOf(this.config),
        graceMs: this.config.fenceGuardGraceMs,
        fencePools: this.config.pools.filter((p) => p.shared).map((p) => p.id),
      });
      this.guardWritten = validUntilMs;
    });
    return this.guardWrite;
  }

  private async publishReport(): Promise<void> {
    await this.fencer.importGuardEvents(this.config.dataDir);
    const stopTimer = this.metrics.reportSeconds.startTimer();
    const report = await this.buildReport();
    stopTimer();
    this.usage.record(report);
    if (this.stopped || this.nc.isClosed()) return;
    this.metrics.reports.inc();
    this.lease.sent(report.seq);
    this.nc.publish(subjects.capacity(this.config.hostId), encodeJson(report), { reply: subjects.lease(this.config.hostId) });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    // Commands already running finish (a half-done start would leave a namespace behind).
    await this.commands?.drain();
    await this.operate?.stop();
    clearTimeout(this.timer);
    clearInterval(this.leaseTimer);
    clearInterval(this.storageTimer);
    clearInterval(this.criuTimer);
    this.host.migrations.unwatchDeadlines();
    await this.metricsServer?.close();
    await this.nc.drain();
  }
}
