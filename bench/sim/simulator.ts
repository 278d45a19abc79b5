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
import { SimHost } from './host.ts';

export interface SimulatorOptions {
  natsUrl: string;
  /** the control plane's secrets directory (ControlPlaneSecrets): each host's identity is there */
  controlDir: string;
  hostIds: string[];
  reportIntervalMs: number;
  /** connections opened at once (TLS handshakes) */
  connectConcurrency?: number;
}

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

  constructor(private readonly o: SimulatorOptions) {}

  /** Connects every host (its own identity) and starts its reports; resolves once all are connected. */
  async start(onProgress?: (connected: number) => void): Promise<void> {
    const secrets = ControlPlaneSecrets.open(this.o.controlDir);
    const startedAt = Date.now();
    const queue = this.o.hostIds.map((hostId, i) => ({ hostId, i }));
    const worker = async () => {
      for (let next = queue.shift(); next && !this.stopped; next = queue.shift()) {
        const settings = secrets.clientSettings(agentIdentity(next.hostId).name, this.o.natsUrl);
        const nc = await connect({ ...natsConnectOptions(settings), maxReconnectAttempts: -1, reconnectTimeWait: 250, waitOnFirstConnect: true });
        const host = new SimHost({ hostId: next.hostId, address: simAddress(next.i), reportIntervalMs: this.o.reportIntervalMs, pid: process.pid, startedAt });
        const run: Running = { host, nc, timer: undefined, acked: false };
        this.serve(run);
        this.running.push(run);
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
    if (this.stopped) return;
    run.timer = setTimeout(() => {
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
      minLeaseRemainingMs: null,
      ...this.events,
    };
    for (const { host, nc } of this.running) {
      if (!nc.isClosed()) t.connected++;
      t.reports += host.counts.reports;
      t.acks += host.counts.acks;
      t.unacked += host.counts.unacked;
      t.lateAcks += host.counts.lateAcks;
      t.commands += host.counts.commands;
      t.commandErrors += host.counts.commandErrors;
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
