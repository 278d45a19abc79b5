/**
 * A migration runner against fakes, pure and fast (no Redis, no NATS), like Nomad's scheduler
 * test harness: an in-memory store, WorkloadWrites under a lock the test can take away, and
 * agents that answer every migration command and can be told to fail one of them.
 */
import type { NatsConnection } from 'nats';
import { pino } from 'pino';
import { DEFAULT_MIGRATION_TIMEOUTS, newMigrationRecord, type MigrationTimeouts } from '@ferry/core';
import {
  WorkloadSpec,
  type AgentCommand,
  type DeferredMigrationStep,
  type HostRecord,
  type MigrationEvent,
  type MigrationPhase,
  type MigrationRecord,
  type MigrationStrategy,
  type WorkloadRecord,
} from '@ferry/protocol';
import { LockLostError, type ClusterStore, type WorkloadWrites } from '@ferry/store';
import { sampleContainer, sampleHostRecord, sampleWorkloadRecord } from '../../../../../test/fixtures/capacity.ts';
import { AgentCallError, type AgentClient } from '../../workloads/agent-client.ts';
import { MigrationRunner } from '../runner.ts';

/** How a step fails: the agent reports an error, its request times out, its agent restarted, or the workload lock is lost meanwhile. */
export type FailureKind = 'error' | 'timeout' | 'restarted' | 'lock-lost';
export const FAILURE_KINDS: FailureKind[] = ['error', 'timeout', 'restarted', 'lock-lost'];

/**
 * Where a fault lands: an agent request (host and command; the lock is lost while it is in
 * flight), or a scheduler phase (when its "started" event goes out, as the lab's fault matrix
 * injects: `error` then is the scheduler's own failure — the destination no longer passes the
 * checks at validate, a failed Redis write at reserve and commit).
 */
export type Fault = { kind: FailureKind; hostId: string; command: AgentCommand } | { kind: 'error' | 'lock-lost'; phase: MigrationPhase };

export interface AgentCall {
  hostId: string;
  command: AgentCommand;
  request: Record<string, unknown>;
  timeoutMs: number;
}

/** Everything that happened, in order: agent calls, writes that landed, events, the lock's loss. */
export type Happening =
  | { type: 'call'; call: AgentCall }
  | { type: 'write'; what: 'migration' | 'workload' | 'commit'; record: MigrationRecord | WorkloadRecord }
  | { type: 'event'; event: MigrationEvent }
  | { type: 'lock-lost' };

const SPEC = WorkloadSpec.parse({
  id: 'w1',
  template: 'busybox',
  command: ['/bin/sh'],
  resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 },
  networks: [{ network: 'prod', address: '10.77.0.5' }],
  pool: 'local',
});

const CERT = { certPem: '-----BEGIN CERTIFICATE-----\nx', keyPem: '-----BEGIN PRIVATE KEY-----\ny' };

export class Harness {
  readonly happened: Happening[] = [];
  readonly deferred: DeferredMigrationStep[] = [];
  readonly ended: MigrationRecord[] = [];
  hosts: HostRecord[] = [sampleHostRecord('h1'), sampleHostRecord('h2')];
  readonly kv = new Map<string, string>();
  workload: WorkloadRecord = sampleWorkloadRecord(SPEC, 'h1', 'running');
  migration: MigrationRecord;
  faults: Fault[] = [];
  cancel = false;
  /** told of every agent call before it is answered */
  onCall: (call: AgentCall) => void = () => undefined;
  private lockHeld = true;

  constructor(strategy: MigrationStrategy, options: { running?: boolean; pool?: 'local' | 'shared' } = {}) {
    if (options.running === false) this.workload = { ...this.workload, phase: 'stopped' };
    if (options.pool === 'shared') {
      this.workload = { ...this.workload, spec: { ...this.workload.spec, pool: 'shared' } };
      // each host sees the other's probe file on the pool: proven shared (sharedPoolProven)
      this.hosts = this.hosts.map((h) => {
        const other = h.id === 'h1' ? 'h2' : 'h1';
        const pools = h.capacity.pools.map((p) => (p.id === 'shared' ? { ...p, probe: { token: `t-${h.id}`, sees: [{ hostId: other, token: `t-${other}` }] } } : p));
        return { ...h, capacity: { ...h.capacity, pools } };
      });
    }
    this.migration = newMigrationRecord(
      'm-w1-test',
      this.workload,
      { destination: 'h2', destinationReason: 'asked', strategy, strategyReason: 'asked', requested: { mode: strategy === 'cold' ? 'cold' : 'live', strategy } },
      Date.now(),
    );
  }

  get calls(): AgentCall[] {
    return this.happened.flatMap((h) => (h.type === 'call' ? [h.call] : []));
  }

  get events(): MigrationEvent[] {
    return this.happened.flatMap((h) => (h.type === 'event' ? [h.event] : []));
  }

  /** What happened after the lock was lost (nothing may, but the request that was in flight). */
  afterLockLoss(): Happening[] {
    const at = this.happened.findIndex((h) => h.type === 'lock-lost');
    return at < 0 ? [] : this.happened.slice(at + 1);
  }

  /** A runner on the migration as the store has it now (a job picked up again). */
  runner(timeouts: Partial<MigrationTimeouts> = {}): MigrationRunner {
    const log = pino({ level: 'silent' });
    return new MigrationRunner(this.migration, this.store(), this.writes(), this.agents(), this.nc(), log, async () => undefined, { ...DEFAULT_MIGRATION_TIMEOUTS, cleanupRetryMs: 0, ...timeouts });
  }

  /** A fault fires once. */
  private take(match: (f: Fault) => boolean): Fault | undefined {
    const at = this.faults.findIndex(match);
    return at < 0 ? undefined : this.faults.splice(at, 1)[0];
  }

  private loseLock(): void {
    this.lockHeld = false;
    this.happened.push({ type: 'lock-lost' });
  }

  private store(): ClusterStore {
    const store = {
      keys: { migrations: 'ferry:migrations' },
      redis: {
        get: async (key: string) => this.kv.get(key) ?? null,
        set: async (key: string, value: string) => void this.kv.set(key, value),
        del: async (...keys: string[]) => keys.filter((k) => this.kv.delete(k)).length,
      },
      hosts: { get: async (id: string) => this.hosts.find((h) => h.id === id) ?? null },
      workloads: { get: async (id: string) => (id === this.workload.spec.id ? this.workload : null) },
      snapshot: async () => ({ hosts: this.hosts, workloads: [this.workload] }),
      cancelRequested: async () => this.cancel,
      endMigration: async (record: MigrationRecord) => void this.ended.push(record),
      deferredSteps: { put: async (_key: string, step: DeferredMigrationStep) => void this.deferred.push(step) },
    };
    return store as unknown as ClusterStore;
  }

  /** Writes that land only while the lock is held, like FencedWrites; a scheduler fault at reserve or commit fails one. */
  private writes(): WorkloadWrites {
    const check = async () => {
      if (!this.lockHeld) throw new LockLostError('ferry:lock:workload:w1');
    };
    const redisDown = (phase: MigrationPhase) => {
      if (this.take((f) => 'phase' in f && f.phase === phase && f.kind === 'error')) throw new Error('Reached the max retries per request limit (which is 3)');
    };
    return {
      check,
      putMigration: async (record) => {
        await check();
        this.migration = record;
        this.happened.push({ type: 'write', what: 'migration', record });
      },
      putWorkload: async (record) => {
        await check();
        if (record.phase === 'migrating') redisDown('reserve');
        this.workload = record;
        this.happened.push({ type: 'write', what: 'workload', record });
      },
      commitMigration: async (workload, migration) => {
        await check();
        redisDown('commit');
        this.workload = workload;
        this.migration = migration;
        this.happened.push({ type: 'write', what: 'commit', record: migration });
      },
    };
  }

  private nc(): NatsConnection {
    const publish = (_subject: string, data: Uint8Array) => {
      const event = JSON.parse(new TextDecoder().decode(data)) as MigrationEvent;
      this.happened.push({ type: 'event', event });
      if (event.type !== 'migration.phase' || event.status !== 'started') return;
      const fault = this.take((f) => 'phase' in f && f.phase === event.phase && (f.kind === 'lock-lost' || event.phase === 'validate'));
      if (fault?.kind === 'lock-lost') this.loseLock();
      // the destination went down between the plan and the validate phase
      else if (fault) this.hosts[1] = { ...this.hosts[1]!, state: 'down' };
    };
    return { publish } as unknown as NatsConnection;
  }

  private agents(): AgentClient {
    const call = async (hostId: string, command: AgentCommand, request: Record<string, unknown>, timeoutMs: number) => {
      const made: AgentCall = { hostId, command, request, timeoutMs };
      this.happened.push({ type: 'call', call: made });
      this.onCall(made);
      const fault = this.take((f) => 'command' in f && f.hostId === hostId && f.command === command);
      switch (fault?.kind) {
        case 'error':
          throw new AgentCallError('MIGRATION_FAILED', `${command} failed on ${hostId}`, false);
        case 'timeout':
          throw new AgentCallError('AGENT_TIMEOUT', `agent ${hostId} did not answer ${command} within ${timeoutMs} ms`, true);
        case 'restarted':
          throw new AgentCallError('AGENT_RESTARTED', `agent ${hostId} restarted while ${command} was in flight`, true);
        case 'lock-lost':
          this.loseLock(); // another scheduler took the workload's lock while this request was in flight
          break;
        case undefined:
          break;
      }
      return this.answer(command, request);
    };
    return { call } as unknown as AgentClient;
  }

  /** What a healthy agent answers. */
  private answer(command: AgentCommand, request: Record<string, unknown>): unknown {
    const m = this.migration;
    switch (command) {
      case 'migration.prepare':
        return { address: '10.250.0.20', rsyncPort: 8730, pageServerPort: m.strategy === 'page-server' ? 8731 : null, sharedRootfs: request.sharedRootfs, tls: CERT };
      case 'migration.presync':
        return { bytes: 1000, ms: 5 };
      case 'migration.transfer':
        return { bytes: 1000, ms: 5, steps: [{ step: 'rsync', ms: 5 }] };
      case 'migration.dump':
        return {
          frozenAt: 1_000,
          dumpMs: 50,
          bytes: m.strategy === 'page-server' ? 4000 : 0,
          lazyPagesPort: m.strategy === 'lazy' ? 9000 : null,
          steps: [{ step: 'checkpoint', ms: 45 }],
          criu: { freezingMs: 1, frozenMs: 30, memdumpMs: 0, memwriteMs: 0 },
        };
      case 'migration.restore':
        return { restoredAt: 1_120, restoreMs: 60, status: sampleContainer('w1', { epoch: m.epochTo }), steps: [{ step: 'restore', ms: 50 }], criu: { forkingMs: 5, restoreMs: 40 } };
      case 'container.status':
        return sampleContainer('w1', { epoch: m.epochTo, state: m.wasRunning ? 'running' : 'created' });
      case 'migration.resume':
        return sampleContainer('w1', { epoch: m.epochFrom });
      case 'migration.abort':
        return { done: true };
      case 'migration.finish':
        return { done: true, ...(request.role === 'source' && m.strategy === 'lazy' ? { lazyBytes: 500 } : {}) };
      default:
        throw new Error(`the harness has no answer to ${command}`);
    }
  }
}
