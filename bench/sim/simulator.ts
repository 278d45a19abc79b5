/**
 * N simulated hosts in one process (bench only): each its own NATS connection as its own agent
 * identity (agent-<hostId>: its NKey seed and its client certificate of the cluster CA, both from
 * the control plane's directory), reporting every interval like a real agent and answering
 * commands on ferry.agent.<hostId>.>.
 *
 * Why a connection per host: NATS enforces each identity's permissions (packages/protocol
 * nats-identities.ts): agent-<h> may publish only ferry.host.<h>.capacity and subscribe only to
 * its own command and lease subjects. One shared connection could only speak for many hosts with
 * an identity the product does not have (and the scheduler would then not see what it sees from
 * real agents: one client per host, its reply subjects, its permissions).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type NatsConnection } from 'nats';
import { agentIdentity, subjects } from '@ferry/protocol';
import { encodeJson, natsConnectOptions } from '@ferry/runtime';
import { ControlPlaneSecrets } from '@ferry/security';
import { SimHost, SimSharedPool } from './host.ts';

export interface SimulatorOptions {
  natsUrl: string;
  /** the control plane's secrets directory (ControlPlaneSecrets): each host's identity is there */
  controlDir: string;
  hostIds: string[];
  reportIntervalMs: number;
  /** connections opened at once (TLS handshakes) */
  connectConcurrency?: number;
  /**
   * hosts per storage group (default 0: none): the hosts are dealt into groups by index modulo
   * the group count (sim-00001 into san-000, sim-00002 into san-001, …), so hosts next to each
   * other — a rack — are in different groups; each group shares one pool (`storagePoolOf`), with
   * probes and storage heartbeats as real agents exchange them
   */
  storageGroupSize?: number;
}

/** how many storage groups n hosts make with groups of `size` (0: none) */
export const storageGroupCount = (n: number, size: number) => (size > 0 ? Math.max(1, Math.floor(n / size)) : 0);

/** the shared pool of the storage group of host index i (of n) */
export const storagePoolOf = (i: number, n: number, size: number) => `san-${String(i % storageGroupCount(n, size)).padStart(3, '0')}`;

/** a probe token (PoolProbe.token: 16–64 hex digits) for host index i */
const probeToken = (i: number) => (i + 1).toString(16).padStart(16, '0');

/** the simulated host's index → a management address (10.100.0.1, …): nothing listens on it */
export const simAddress = (i: number) => `10.${100 + Math.floor((i + 1) / 65_536)}.${Math.floor((i + 1) / 256) % 256}.${(i + 1) % 256}`;

/** `sim-00001`…: valid host ids that sort in order */
export const simHostIds = (n: number, prefix = 'sim') => Array.from({ length: n }, (_, i) => `${prefix}-${String(i + 1).padStart(5, '0')}`);

export interface SimulatorTotals {
  hosts: number;
  connected: number;
  reports: number;
  acks: number;
  /** reports not acknowledged within 5 report intervals */
  unacked: number;
  lateAcks: number;
  commands: number;
  commandErrors: number;
  containers: number;
  running: number;
  /** hosts whose lease ran out (a real agent would have fenced) */
  leaseExpired: number;
  /** hosts killed (kill()) */
  killed: number;
  /** workloads running on more than one live host */
  doubleOwners: number;
  /** the smallest lease remaining over the hosts that ever got one, ms */
  minLeaseRemainingMs: number | null;
  disconnects: number;
  reconnects: number;
  errors: number;
}

interface Running {
  host: SimHost;
  nc: NatsConnection;
  timer: NodeJS.Timeout | undefined;
  acked: boolean;
}

export class Simulator {
  private readonly running: Running[] = [];
  private stopped = false;
  private readonly events = { disconnects: 0, reconnects: 0, errors: 0 };
  private readonly byId = new Map<string, Running>();
  private readonly pools = new Map<string, SimSharedPool>();
  private readonly poolOf = new Map<string, SimSharedPool>();

  constructor(private readonly o: SimulatorOptions) {
    const size = o.storageGroupSize ?? 0;
    if (size > 0) {
      const n = o.hostIds.length;
      o.hostIds.forEach((hostId, i) => {
        const id = storagePoolOf(i, n, size);
        let pool = this.pools.get(id);
        if (!pool) this.pools.set(id, (pool = new SimSharedPool(id)));
        pool.join(hostId, probeToken(i));
        this.poolOf.set(hostId, pool);
      });
    }
  }

  /** the shared pool host `hostId` is in (storage groups), if any */
  sharedPoolOf(hostId: string): string | null {
    return this.poolOf.get(hostId)?.id ?? null;
  }

  /**
   * These hosts die at once, as a dead machine does: no more reports (so no lease renewals), no
   * storage heartbeats, nothing answers on their connections — which are closed — and their
   * containers are gone. Returns when they died (ms since the epoch).
   */
  async kill(hostIds: string[]): Promise<number> {
    const runs = hostIds.map((id) => {
      const run = this.byId.get(id);
      if (!run) throw new Error(`no simulated host ${id}`);
      return run;
    });
    const at = Date.now();
    for (const run of runs) {
      clearTimeout(run.timer);
      run.timer = undefined;
      run.host.kill();
    }
    await Promise.allSettled(runs.map((run) => run.nc.close()));
    return at;
  }

  /** for each workload id: the live hosts where it runs */
  owners(ids?: Iterable<string>): Map<string, string[]> {
    const wanted = ids ? new Set(ids) : null;
    const out = new Map<string, string[]>();
    if (wanted) for (const id of wanted) out.set(id, []);
    for (const { host } of this.running) {
      if (host.dead) continue;
      for (const id of host.runningIds()) {
        if (wanted && !wanted.has(id)) continue;
        const list = out.get(id);
        if (list) list.push(host.hostId);
        else out.set(id, [host.hostId]);
      }
    }
    return out;
  }

  /** workloads running on more than one live host, with those hosts */
  doubleOwners(): Array<{ workload: string; hosts: string[] }> {
    return [...this.owners()].filter(([, hosts]) => hosts.length > 1).map(([workload, hosts]) => ({ workload, hosts }));
  }

  /** Connects every host (its own identity) and starts its reports; resolves once all are connected. */
  async start(onProgress?: (connected: number) => void): Promise<void> {
    const secrets = ControlPlaneSecrets.open(this.o.controlDir);
    const startedAt = Date.now();
    const queue = this.o.hostIds.map((hostId, i) => ({ hostId, i }));
    const worker = async () => {
      for (let next = queue.shift(); next && !this.stopped; next = queue.shift()) {
        const settings = secrets.clientSettings(agentIdentity(next.hostId).name, this.o.natsUrl);
        const nc = await connect({ ...natsConnectOptions(settings), maxReconnectAttempts: -1, reconnectTimeWait: 250, waitOnFirstConnect: true });
        const pool = this.poolOf.get(next.hostId);
        const host = new SimHost({
          hostId: next.hostId,
          address: simAddress(next.i),
          reportIntervalMs: this.o.reportIntervalMs,
          pid: process.pid,
          startedAt,
          ...(pool ? { sharedPool: pool } : {}),
        });
        const run: Running = { host, nc, timer: undefined, acked: false };
        this.serve(run);
        this.running.push(run);
        this.byId.set(next.hostId, run);
        onProgress?.(this.running.length);
        // the first report at a random point of the interval: real hosts do not tick together
        this.schedule(run, Math.floor(Math.random() * this.o.reportIntervalMs));
      }
    };
    await Promise.all(Array.from({ length: this.o.connectConcurrency ?? 16 }, worker));
  }

  private serve(run: Running): void {
    const { host, nc } = run;
    nc.subscribe(subjects.lease(host.hostId), { callback: (err, msg) => !err && host.onLeaseAck(msg.data) });
    const prefix = subjects.agentCommand(host.hostId, '');
    nc.subscribe(`${prefix}>`, {
      callback: (err, msg) => {
        if (err) return;
        const reply = host.handle(msg.subject.slice(prefix.length), msg.data);
        if (msg.reply) msg.respond(encodeJson(reply));
      },
    });
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === 'disconnect') this.events.disconnects++;
        else if (status.type === 'reconnect') this.events.reconnects++;
        else if (status.type === 'error') this.events.errors++;
      }
    })().catch(() => undefined);
  }

  private schedule(run: Running, delayMs: number): void {
    if (this.stopped || run.host.dead) return;
    run.timer = setTimeout(() => {
      if (run.host.dead) return;
      if (!run.nc.isClosed()) {
        const report = run.host.buildReport();
        run.nc.publish(subjects.capacity(run.host.hostId), encodeJson(report), { reply: subjects.lease(run.host.hostId) });
      }
      this.schedule(run, this.o.reportIntervalMs);
    }, delayMs);
  }

  totals(): SimulatorTotals {
    const now = Date.now();
    const t: SimulatorTotals = {
      hosts: this.o.hostIds.length,
      connected: 0,
      reports: 0,
      acks: 0,
      unacked: 0,
      lateAcks: 0,
      commands: 0,
      commandErrors: 0,
      containers: 0,
      running: 0,
      leaseExpired: 0,
      killed: 0,
      doubleOwners: 0,
      minLeaseRemainingMs: null,
      ...this.events,
    };
    const seen = new Set<string>();
    for (const { host, nc } of this.running) {
      t.reports += host.counts.reports;
      t.acks += host.counts.acks;
      t.unacked += host.counts.unacked;
      t.lateAcks += host.counts.lateAcks;
      t.commands += host.counts.commands;
      t.commandErrors += host.counts.commandErrors;
      if (host.dead) {
        t.killed++;
        continue;
      }
      for (const id of host.runningIds()) {
        if (seen.has(id)) t.doubleOwners++;
        else seen.add(id);
      }
      if (!nc.isClosed()) t.connected++;
      t.containers += host.containerCount();
      t.running += host.runningCount();
      if (host.counts.acks > 0) {
        const left = host.leaseRemainingMs(now);
        if (left < 0) t.leaseExpired++;
        t.minLeaseRemainingMs = t.minLeaseRemainingMs === null ? left : Math.min(t.minLeaseRemainingMs, left);
      }
    }
    return t;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const run of this.running) clearTimeout(run.timer);
    await Promise.allSettled(this.running.map((r) => r.nc.close()));
    await sleep(0);
  }
}
