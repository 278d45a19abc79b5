/**
 * One simulated host (bench only, never used by the product): the agent's side of the protocol
 * without any container behind it. It builds capacity reports like the real agent
 * (services/agent/src/agent.ts: same schema, a seq per report, the lease subject as reply
 * address), keeps its lease from the schedulers' acknowledgements (same rule as the agent's Lease:
 * valid until the acknowledged report's sending plus the lease period) and answers every agent
 * command (services/agent/src/commands.ts) by recording state: a container "runs" as soon as it is
 * started, a migration goes through every phase at once.
 *
 * Requests are parsed with the protocol's own schemas (agentRequestSchemas), so a scheduler
 * sending a request the real agent would refuse is refused here too; results are shaped by
 * agentResultSchemas' types.
 */
import { z } from 'zod';
import {
  AGENT_COMMANDS,
  agentRequestSchemas,
  LeaseAck,
  type AgentCommand,
  type AgentError,
  type AgentReply,
  type AgentResult,
  type CapacityReport,
  type ContainerStatus,
  type CpuInfo,
  type MigrationStrategy,
  type ConfirmFailedResult,
  type StoragePeer,
  type WorkloadSpec,
} from '@ferry/protocol';

/** what every simulated host reports as its machine (one CPU model: any host can take any workload) */
export const SIM_CPU: CpuInfo = { vendor: 'GenuineIntel', family: 6, model: 85, modelName: 'Ferry simulated CPU', flags: ['fpu', 'sse2', 'avx2'], count: 32 };
const MiB = 2 ** 20;
const GiB = 2 ** 30;

export interface SimHostOptions {
  hostId: string;
  /** the host's management address (what other agents reach it at; nothing listens there) */
  address: string;
  reportIntervalMs: number;
  /** memory and local pool of the simulated machine */
  memoryBytes?: number;
  poolBytes?: number;
  /** the simulator's pid stands for every simulated agent's */
  pid: number;
  startedAt: number;
  /** a shared pool this host mounts with the other hosts of its storage group (none: local pool only) */
  sharedPool?: SimSharedPool;
}

/**
 * One shared pool (an NFS export, a SAN volume) as the hosts of one storage group see it, held in
 * the simulator's memory: what the real agents exchange through files in the pool
 * (services/agent/src/inventory/probes.ts, services/agent/src/storage/heartbeats.ts) — each
 * member's probe token (which proves the sharing to the scheduler), its storage heartbeat (written
 * with every report, so it stops when the host dies) and the declarations of failure.
 */
export class SimSharedPool {
  private readonly members = new Map<string, { token: string; beatAt: number | null; fenced: boolean }>();
  /** hosts declared failed in this pool (storage.confirm-failed writes them) */
  readonly declared = new Set<string>();

  constructor(
    readonly id: string,
    readonly totalBytes = 8192 * GiB,
  ) {}

  join(hostId: string, token: string): void {
    this.members.set(hostId, { token, beatAt: null, fenced: false });
  }

  /** the host's heartbeat written now */
  beat(hostId: string, now: number): void {
    const m = this.members.get(hostId);
    if (m) m.beatAt = now;
  }

  token(hostId: string): string {
    return this.members.get(hostId)!.token;
  }

  /** the other members' probe files, as `hostId` reads them (PoolProbe.sees) */
  sees(hostId: string): Array<{ hostId: string; token: string }> {
    const out: Array<{ hostId: string; token: string }> = [];
    for (const [id, m] of this.members) if (id !== hostId) out.push({ hostId: id, token: m.token });
    return out;
  }

  /** the other members' heartbeats as `hostId` sees them (StorageLiveness.peers); a heartbeat never written is not listed */
  peers(hostId: string, now: number): StoragePeer[] {
    const out: StoragePeer[] = [];
    for (const [id, m] of this.members) {
      if (id === hostId || m.beatAt === null) continue;
      out.push({ hostId: id, pool: this.id, unchangedForMs: Math.max(0, now - m.beatAt), fenced: m.fenced });
    }
    return out;
  }

  /** storage.confirm-failed, as the real agent answers it (heartbeats.ts confirmFailed) */
  confirmFailed(hostId: string, by: string, staleAfterMs: number, now: number): ConfirmFailedResult {
    if (!this.members.has(by)) return { confirmed: false, reason: 'not-shared', unchangedForMs: null };
    this.declared.add(hostId);
    const m = this.members.get(hostId);
    if (!m || m.beatAt === null) return { confirmed: true, reason: 'stale', unchangedForMs: null };
    const unchangedForMs = Math.max(0, now - m.beatAt);
    if (m.fenced) return { confirmed: true, reason: 'fenced', unchangedForMs };
    if (unchangedForMs >= staleAfterMs) return { confirmed: true, reason: 'stale', unchangedForMs };
    return { confirmed: false, reason: 'alive', unchangedForMs };
  }
}

interface SimContainer {
  spec: WorkloadSpec;
  epoch: number;
  state: ContainerStatus['state'];
  startedAt: number | null;
  exit: ContainerStatus['exit'];
  generation?: string;
}

interface SimMigration {
  role: 'source' | 'destination';
  workloadId: string;
  strategy: MigrationStrategy;
  /** destination: what it restores */
  spec?: WorkloadSpec;
  epoch?: number;
}

class SimCommandError extends Error {
  constructor(
    readonly code: AgentError['code'],
    message: string,
  ) {
    super(message);
  }
}

/** a report still unacknowledged this many reports later counts as lost */
const UNACKED_AFTER = 5;

const KNOWN = new Set<string>(AGENT_COMMANDS);
const isCommand = (name: string): name is AgentCommand => KNOWN.has(name);
const decoder = new TextDecoder();

/** The migration id names its workload (m-<workload>-<suffix>), as the real agent reads it. */
function workloadOf(migrationId: string): string {
  const match = /^m-(.+)-[a-z0-9]+$/.exec(migrationId);
  if (!match) throw new SimCommandError('BAD_REQUEST', `not a migration id: ${migrationId}`);
  return match[1]!;
}

/** A CRIU --tls pair in shape only: nothing ever uses it, the scheduler only passes it on. */
const FAKE_TLS = {
  certPem: '-----BEGIN CERTIFICATE-----\nc2ltdWxhdGVk\n-----END CERTIFICATE-----\n',
  keyPem: '-----BEGIN PRIVATE KEY-----\nc2ltdWxhdGVk\n-----END PRIVATE KEY-----\n',
};

export class SimHost {
  readonly hostId: string;
  private seq = 0;
  private readonly containers = new Map<string, SimContainer>();
  private readonly migrations = new Map<string, SimMigration>();
  /** sending time of recent reports, by seq: what an acknowledgement renews the lease from */
  private readonly sentAt = new Map<number, number>();
  private leaseValidUntil: number;
  private fakePid = 1000;
  /** killed: no more reports, heartbeats or answers; its containers are gone with it */
  dead = false;
  /**
   * unacked: reports no scheduler acknowledged within UNACKED_AFTER reports (lost, or so late that
   * the lease they would renew is gone); lateAcks: acknowledgements of a report already counted so,
   * or acknowledged twice
   */
  readonly counts = { reports: 0, acks: 0, unacked: 0, lateAcks: 0, commands: 0, commandErrors: 0 };

  constructor(private readonly o: SimHostOptions) {
    this.hostId = o.hostId;
    // a new agent gets no lease of its own making (services/agent/src/lease.ts)
    this.leaseValidUntil = Date.now();
  }

  /** ms until the lease runs out (negative: it ran out; a real agent would have fenced) */
  leaseRemainingMs(now = Date.now()): number {
    return this.leaseValidUntil - now;
  }

  /** The host dies: its containers with it (nothing of it answers any more). */
  kill(): void {
    this.dead = true;
    this.containers.clear();
    this.migrations.clear();
  }

  /** ids of the containers running here */
  runningIds(): string[] {
    const ids: string[] = [];
    for (const [id, c] of this.containers) if (c.state === 'running') ids.push(id);
    return ids;
  }

  containerCount(): number {
    return this.containers.size;
  }

  runningCount(): number {
    let n = 0;
    for (const c of this.containers.values()) if (c.state === 'running') n++;
    return n;
  }

  private status(id: string, c: SimContainer, withSpec = false): ContainerStatus {
    const running = c.state === 'running';
    const memoryLimitBytes = c.spec.resources.memoryMiB * MiB;
    return {
      id,
      state: c.state,
      epoch: c.epoch,
      pid: running ? this.fakePid : null,
      startedAt: c.startedAt,
      exit: c.exit,
      usage: running ? { memoryBytes: Math.min(memoryLimitBytes, 16 * MiB), memoryLimitBytes, cpuNanos: 0, cpuPercent: 0, diskBytes: null, pids: 1 } : null,
      ...(c.generation ? { generation: c.generation } : {}),
      ...(withSpec ? { spec: c.spec } : {}),
    };
  }

  /** One capacity report, as the agent builds it (buildReport), the containers from this host's records. */
  buildReport(now = Date.now()): CapacityReport {
    const memoryBytes = this.o.memoryBytes ?? 64 * GiB;
    const poolBytes = this.o.poolBytes ?? 2048 * GiB;
    const shared = this.o.sharedPool;
    let usedMemory = 0;
    let usedDisk = 0;
    let usedShared = 0;
    const statuses: ContainerStatus[] = [];
    for (const [id, c] of this.containers) {
      if (c.state === 'running') usedMemory += 16 * MiB;
      if (shared && c.spec.pool === shared.id) usedShared += c.spec.resources.diskMiB * MiB;
      else usedDisk += c.spec.resources.diskMiB * MiB;
      statuses.push(this.status(id, c));
    }
    // the storage heartbeat goes with the report (the real agent writes it every report interval)
    shared?.beat(this.hostId, now);
    const seq = this.seq++;
    this.sentAt.set(seq, now);
    if (this.sentAt.delete(seq - UNACKED_AFTER)) this.counts.unacked++;
    this.counts.reports++;
    return {
      v: 1,
      hostId: this.hostId,
      hostname: this.hostId,
      address: this.o.address,
      seq,
      sentAt: now,
      intervalMs: this.o.reportIntervalMs,
      agent: { version: '0.1.0-sim', pid: this.o.pid, startedAt: this.o.startedAt },
      cpu: SIM_CPU,
      memory: { totalBytes: memoryBytes, availableBytes: Math.max(0, memoryBytes - 2 * GiB - usedMemory) },
      load: { one: 0.1, five: 0.1, fifteen: 0.1 },
      pools: [
        { id: 'local', path: '/var/lib/ferry/pools/local', shared: false, totalBytes: poolBytes, freeBytes: Math.max(0, poolBytes - usedDisk) },
        ...(shared
          ? [
              {
                id: shared.id,
                path: `/mnt/${shared.id}`,
                shared: true,
                totalBytes: shared.totalBytes,
                freeBytes: Math.max(0, shared.totalBytes - usedShared),
                probe: { token: shared.token(this.hostId), sees: shared.sees(this.hostId) },
              },
            ]
          : []),
      ],
      networks: [{ name: 'prod', bridge: 'fbr-prod', subnet: '10.77.0.0/16' }],
      criu: { version: '4.2.1', usable: true, features: { memDirtyTrack: true, uffdNoncoop: true } },
      templates: [{ name: 'busybox', version: 'sim' }],
      containers: statuses,
      fencing: [],
      ...(shared ? { storage: { heartbeatOk: true, peers: shared.peers(this.hostId, now) } } : {}),
    };
  }

  /** A scheduler's acknowledgement on ferry.host.<id>.lease (the agent's listenForAcks, without fencing). */
  onLeaseAck(data: Uint8Array): void {
    if (data.length === 0) return; // no responders: nobody heard the report
    let parsed: unknown;
    try {
      parsed = JSON.parse(decoder.decode(data));
    } catch {
      return;
    }
    const ack = LeaseAck.safeParse(parsed);
    if (!ack.success) return;
    const at = this.sentAt.get(ack.data.seq);
    if (at === undefined) {
      this.counts.lateAcks++;
      return;
    }
    this.sentAt.delete(ack.data.seq);
    this.counts.acks++;
    this.leaseValidUntil = Math.max(this.leaseValidUntil, at + ack.data.leaseMs);
    // superseded copies stop, as the agent's stopSuperseded does (after checking its own record)
    for (const copy of ack.data.superseded) {
      const c = this.containers.get(copy.id);
      if (c && c.epoch <= copy.epoch && c.state === 'running' && copy.owner !== this.hostId) {
        c.state = 'stopped';
        c.exit = { reason: 'superseded', at: Date.now() };
      }
    }
  }

  /** Parses and answers one command; never throws (every failure becomes an error reply). */
  handle(command: string, data: Uint8Array): AgentReply {
    this.counts.commands++;
    try {
      if (!isCommand(command)) throw new SimCommandError('BAD_REQUEST', `unknown command ${command}`);
      let body: unknown;
      try {
        body = JSON.parse(decoder.decode(data) || '{}');
      } catch (err) {
        throw new SimCommandError('BAD_REQUEST', `request is not JSON: ${(err as Error).message}`);
      }
      const parsed = agentRequestSchemas[command].safeParse(body);
      if (!parsed.success) throw new SimCommandError('BAD_REQUEST', `invalid ${command} request: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      return { ok: true, result: this.run(command, parsed.data) };
    } catch (err) {
      this.counts.commandErrors++;
      if (err instanceof SimCommandError) return { ok: false, error: { code: err.code, message: err.message } };
      return { ok: false, error: { code: 'RUNTIME_ERROR', message: (err as Error).message } };
    }
  }

  private need(id: string): SimContainer {
    const c = this.containers.get(id);
    if (!c) throw new SimCommandError('NOT_FOUND', `no container ${id} on host ${this.hostId}`);
    return c;
  }

  private run(command: AgentCommand, request: unknown): AgentResult<AgentCommand> {
    const now = Date.now();
    switch (command) {
      case 'container.create': {
        const { spec, epoch } = request as z.output<(typeof agentRequestSchemas)['container.create']>;
        const known = this.containers.get(spec.id);
        if (known && known.state === 'running') throw new SimCommandError('CONFLICT', `container ${spec.id} exists and runs`);
        const c: SimContainer = { spec, epoch, state: 'created', startedAt: null, exit: null };
        this.containers.set(spec.id, c);
        return this.status(spec.id, c);
      }
      case 'container.start': {
        const { id, epoch } = request as z.output<(typeof agentRequestSchemas)['container.start']>;
        const c = this.need(id);
        if (epoch !== undefined) c.epoch = epoch;
        if (c.state !== 'running') {
          c.state = 'running';
          c.startedAt = now;
          c.exit = null;
        }
        return this.status(id, c);
      }
      case 'container.stop': {
        const { id } = request as z.output<(typeof agentRequestSchemas)['container.stop']>;
        const c = this.need(id);
        if (c.state === 'running' || c.state === 'frozen') {
          c.state = 'stopped';
          c.exit = { reason: 'stopped', at: now };
        }
        return this.status(id, c);
      }
      case 'container.destroy': {
        const { id } = request as z.output<(typeof agentRequestSchemas)['container.destroy']>;
        return { id, destroyed: this.containers.delete(id) };
      }
      case 'container.thaw': {
        const { id } = request as z.output<(typeof agentRequestSchemas)['container.thaw']>;
        const c = this.need(id);
        if (c.state === 'frozen') c.state = 'running';
        return this.status(id, c);
      }
      case 'container.adopt': {
        const { spec, epoch } = request as z.output<(typeof agentRequestSchemas)['container.adopt']>;
        const c: SimContainer = { spec, epoch, state: 'running', startedAt: now, exit: null };
        this.containers.set(spec.id, c);
        return this.status(spec.id, c);
      }
      case 'container.stamp': {
        const { generation, ids } = request as z.output<(typeof agentRequestSchemas)['container.stamp']>;
        const stamped: string[] = [];
        for (const id of ids) {
          const c = this.containers.get(id);
          if (!c) continue;
          c.generation = generation;
          stamped.push(id);
        }
        return { stamped };
      }
      case 'container.status': {
        const { id } = request as z.output<(typeof agentRequestSchemas)['container.status']>;
        return this.status(id, this.need(id), true);
      }
      case 'container.list':
        return [...this.containers].map(([id, c]) => this.status(id, c));
      case 'container.suspend':
      case 'container.resume':
        throw new SimCommandError('BAD_REQUEST', `simulated host ${this.hostId} does not suspend to disk`);
      case 'migration.prepare': {
        const r = request as z.output<(typeof agentRequestSchemas)['migration.prepare']>;
        this.migrations.set(r.migrationId, { role: 'destination', workloadId: r.spec.id, strategy: r.strategy, spec: r.spec, epoch: r.epoch });
        const pages = r.strategy === 'page-server' || r.strategy === 'lazy' ? 27_000 : null;
        return { address: this.o.address, rsyncPort: 27_873, pageServerPort: pages, sharedRootfs: r.sharedRootfs, tls: FAKE_TLS };
      }
      case 'migration.presync': {
        const r = request as z.output<(typeof agentRequestSchemas)['migration.presync']>;
        const id = workloadOf(r.migrationId);
        this.need(id);
        if (!this.migrations.has(r.migrationId)) this.migrations.set(r.migrationId, { role: 'source', workloadId: id, strategy: 'lazy' });
        return { bytes: 0, ms: 0 };
      }
      case 'migration.dump': {
        const r = request as z.output<(typeof agentRequestSchemas)['migration.dump']>;
        const id = workloadOf(r.migrationId);
        const c = this.need(id);
        this.migrations.set(r.migrationId, { role: 'source', workloadId: id, strategy: r.strategy });
        c.state = 'migrating';
        const lazy = r.strategy === 'lazy';
        return { frozenAt: now, dumpMs: 0, bytes: lazy ? 0 : 16 * MiB, lazyPagesPort: lazy ? 27_001 : null, steps: [], criu: null };
      }
      case 'migration.transfer': {
        const r = request as z.output<(typeof agentRequestSchemas)['migration.transfer']>;
        this.need(workloadOf(r.migrationId));
        return { bytes: 0, ms: 0 };
      }
      case 'migration.restore': {
        const r = request as z.output<(typeof agentRequestSchemas)['migration.restore']>;
        const m = this.migrations.get(r.migrationId);
        if (!m || m.role !== 'destination' || !m.spec || m.epoch === undefined) throw new SimCommandError('NOT_FOUND', `no prepared migration ${r.migrationId} on host ${this.hostId}`);
        const c: SimContainer = { spec: m.spec, epoch: m.epoch, state: 'running', startedAt: now, exit: null };
        this.containers.set(m.workloadId, c);
        return { restoredAt: now, restoreMs: 0, status: this.status(m.workloadId, c), steps: [], criu: null };
      }
      case 'migration.resume': {
        const r = request as z.output<(typeof agentRequestSchemas)['migration.resume']>;
        const id = workloadOf(r.migrationId);
        const c = this.need(id);
        if (r.readyOnly) return this.status(id, c); // the rollback's first step: nothing to take back here
        c.state = 'running';
        this.migrations.delete(r.migrationId);
        return this.status(id, c);
      }
      case 'migration.abort': {
        const { migrationId } = request as z.output<(typeof agentRequestSchemas)['migration.abort']>;
        const m = this.migrations.get(migrationId);
        // a destination that gave up drops what it restored; a source's copy stays as it was
        if (m?.role === 'destination') {
          const c = this.containers.get(m.workloadId);
          if (c && c.epoch === m.epoch) this.containers.delete(m.workloadId);
        }
        this.migrations.delete(migrationId);
        return { done: true, ...(m ? {} : { note: 'nothing to abort' }) };
      }
      case 'migration.finish': {
        const { migrationId, role } = request as z.output<(typeof agentRequestSchemas)['migration.finish']>;
        const m = this.migrations.get(migrationId);
        if (!m) return { done: true, note: 'already finished' };
        // the source keeps nothing of a workload that moved away; the destination only drops its staging
        if (role === 'source' && this.containers.get(m.workloadId)?.state === 'migrating') this.containers.delete(m.workloadId);
        this.migrations.delete(migrationId);
        return { done: true, lazyBytes: 0 };
      }
      case 'storage.confirm-failed': {
        const { hostId, pool, staleAfterMs } = request as z.output<(typeof agentRequestSchemas)['storage.confirm-failed']>;
        const shared = this.o.sharedPool;
        if (!shared || shared.id !== pool) return { confirmed: false, reason: 'not-shared', unchangedForMs: null };
        return shared.confirmFailed(hostId, this.hostId, staleAfterMs, now);
      }
    }
  }
}
