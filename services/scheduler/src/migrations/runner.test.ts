import { describe, expect, it } from 'vitest';
import type { NatsConnection } from 'nats';
import type { DeferredMigrationStep, HostRecord, MigrationRecord, WorkloadRecord } from '@ferry/protocol';
import { pino } from 'pino';
import type { Logger } from '@ferry/runtime';
import { LockLostError, type ClusterStore, type WorkloadWrites } from '@ferry/store';
import { AgentCallError, type AgentClient } from '../workloads/agent-client.ts';
import { sampleMigrationRecord } from '../../../../test/fixtures/capacity.ts';
import { cleanupBackoffMs, DEFAULT_TIMEOUTS, MigrationRunner } from './runner.ts';

/** A committed migration: only its cleanup remains. */
const committed = (strategy: MigrationRecord['strategy']): MigrationRecord =>
  sampleMigrationRecord({
    requested: { mode: 'live', strategy },
    strategy,
    state: 'running',
    phase: 'commit',
    completed: ['validate', 'reserve', 'prepare', 'presync', 'freeze', 'transfer', 'restore', 'verify', 'commit'],
    freeze: { agentMs: 10 },
  });

/** The little of the store a cleanup touches, in memory; hosts in the given states. */
function fakeStore(states: Record<string, HostRecord['state']>) {
  const deferred: DeferredMigrationStep[] = [];
  let ended = false;
  const store = {
    keys: { migrations: 'ferry:migrations' },
    redis: { del: async () => 0 },
    hosts: { get: async (id: string) => ({ id, state: states[id] ?? 'up' }) as HostRecord },
    workloads: { get: async () => ({ hostId: 'h2', epoch: 2 }) as WorkloadRecord },
    migrations: { put: async () => undefined },
    deferredSteps: { put: async (_key: string, step: DeferredMigrationStep) => void deferred.push(step) },
    cancelRequested: async () => false,
    endMigration: async () => void (ended = true),
  };
  return { store: store as unknown as ClusterStore, deferred, ended: () => ended };
}

const nc = { publish: () => undefined } as unknown as NatsConnection;

/** Writes under a lock that is always held. */
const held: WorkloadWrites = { check: async () => undefined, putMigration: async () => undefined, putWorkload: async () => undefined, commitMigration: async () => undefined };

/** A logger whose lines the test reads. */
function capture() {
  const lines: string[] = [];
  const log: Logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
  return { log, text: () => lines.join('') };
}

describe('the cleanup after the commit', () => {
  it('backs off 1 s, 2 s, 4 s … at most 15 s', () => {
    expect([0, 1, 2, 3, 4, 5, 40].map(cleanupBackoffMs)).toEqual([1_000, 2_000, 4_000, 8_000, 15_000, 15_000, 15_000]);
  });

  it('retries a failed finish until it is done, and the migration completes', async () => {
    const { store, ended } = fakeStore({});
    const calls: string[] = [];
    let destinationFailures = 2;
    const agents = {
      call: async (hostId: string, command: string, request: { role?: string }) => {
        calls.push(`${hostId} ${command} ${request.role}`);
        if (hostId === 'h2' && destinationFailures-- > 0) throw new AgentCallError('AGENT_UNREACHABLE', 'agent h2 is not answering (migration.finish)', true);
        return { done: true };
      },
    } as unknown as AgentClient;
    const { log, text } = capture();
    const done = await new MigrationRunner(committed('stop-and-copy'), store, held, agents, nc, log, async () => undefined).run();
    expect(done.state).toBe('completed');
    expect(done.completed).toContain('cleanup');
    expect(ended()).toBe(true);
    expect(calls).toEqual(['h1 migration.finish source', 'h2 migration.finish destination', 'h2 migration.finish destination', 'h2 migration.finish destination']);
    expect(text()).toContain('cleanup step failed; retrying');
  }, 10_000);

  it('hands a step that keeps failing on a host that is up to the deferred steps, and still completes', async () => {
    const { store, deferred } = fakeStore({});
    const agents = {
      call: async (hostId: string) => {
        if (hostId === 'h2') throw new AgentCallError('AGENT_TIMEOUT', 'agent h2 did not answer', true);
        return { done: true };
      },
    } as unknown as AgentClient;
    const done = await new MigrationRunner(committed('stop-and-copy'), store, held, agents, nc, capture().log, async () => undefined, { ...DEFAULT_TIMEOUTS, cleanupRetryMs: 0 }).run();
    expect(done.state).toBe('completed');
    expect(deferred).toEqual([expect.objectContaining({ migrationId: 'm-w1-abc', hostId: 'h2', step: 'finish-destination' })]);
  });

  it('says the destination died while pulling pages only for post-copy', async () => {
    const { store, deferred } = fakeStore({ h2: 'down' });
    const calls: string[] = [];
    const agents = {
      call: async (hostId: string, command: string, request: { role?: string; abandon?: boolean }) => {
        calls.push(`${hostId} ${command} ${request.role}${request.abandon ? ' abandon' : ''}`);
        await new Promise((resolve) => setTimeout(resolve, 1_500)); // a source finish that takes a while
        return { done: true };
      },
    } as unknown as AgentClient;
    const { log, text } = capture();
    const done = await new MigrationRunner(committed('stop-and-copy'), store, held, agents, nc, log, async () => undefined).run();
    expect(done.state).toBe('completed');
    expect(text()).not.toContain('pulling pages');
    expect(calls).toEqual(['h1 migration.finish source']); // no abandon; the destination's finish is deferred
    expect(deferred.map((d) => d.step)).toEqual(['finish-destination']);
  }, 10_000);
});

describe('a runner that lost its workload lock', () => {
  /** Writes under a lock another holder takes over after `allowed` checks and writes. */
  function lapsing(allowed: number) {
    let left = allowed;
    const step = async () => {
      if (left-- <= 0) throw new LockLostError('ferry:lock:workload:w1');
    };
    const writes: WorkloadWrites = { check: step, putMigration: step, putWorkload: step, commitMigration: step };
    return writes;
  }

  it('stops at its next step: no further agent request, no rollback, no event', async () => {
    const { store, ended } = fakeStore({});
    const calls: string[] = [];
    const published: string[] = [];
    const agents = {
      call: async (hostId: string, command: string) => {
        calls.push(`${hostId} ${command}`);
        return { done: true };
      },
    } as unknown as AgentClient;
    const watching = { publish: (subject: string) => void published.push(subject) } as unknown as NatsConnection;
    // the cleanup's first save lands; the lock is gone before the source's finish is asked for
    const run = new MigrationRunner(committed('stop-and-copy'), store, lapsing(1), agents, watching, capture().log, async () => undefined).run();
    await expect(run).rejects.toBeInstanceOf(LockLostError);
    expect(calls).toEqual([]);
    expect(ended()).toBe(false);
    expect(published.length).toBe(1); // "cleanup started", after the one write that landed
  });

  it('does not roll back a migration it no longer drives', async () => {
    const { store } = fakeStore({});
    const calls: string[] = [];
    const agents = {
      call: async (hostId: string, command: string) => {
        calls.push(`${hostId} ${command}`);
        throw new AgentCallError('MIGRATION_FAILED', 'the dump failed', false);
      },
    } as unknown as AgentClient;
    const frozen: MigrationRecord = { ...committed('stop-and-copy'), phase: 'freeze', completed: ['validate', 'reserve', 'prepare', 'presync'], state: 'rolling-back', transfer: null };
    // a rollback under way, picked up by a runner whose lock lapses before its first request
    const run = new MigrationRunner(frozen, store, lapsing(1), agents, nc, capture().log, async () => undefined).run();
    await expect(run).rejects.toBeInstanceOf(LockLostError);
    expect(calls).toEqual([]);
  });
});

describe('a commit whose write fails', () => {
  it('is neither recorded nor rolled back: the job is tried again (decideResume commits then)', async () => {
    const { store } = fakeStore({});
    const onSource = { spec: { id: 'w1' }, hostId: 'h1', epoch: 1, phase: 'migrating', cpu: { flags: [] } } as unknown as WorkloadRecord;
    (store as unknown as { workloads: { get: () => Promise<WorkloadRecord> } }).workloads.get = async () => onSource;
    const saved: MigrationRecord[] = [];
    const calls: string[] = [];
    const writes: WorkloadWrites = {
      ...held,
      putMigration: async (record) => void saved.push(record),
      commitMigration: async () => {
        throw new Error('Reached the max retries per request limit (which is 3)');
      },
    };
    const agents = { call: async (hostId: string, command: string) => void calls.push(`${hostId} ${command}`) } as unknown as AgentClient;
    const verified: MigrationRecord = { ...committed('lazy'), phase: 'verify', completed: ['validate', 'reserve', 'prepare', 'presync', 'freeze', 'transfer', 'restore', 'verify'] };
    const run = new MigrationRunner(verified, store, writes, agents, nc, capture().log, async () => undefined).run();
    await expect(run).rejects.toThrow(/max retries/);
    expect(calls).toEqual([]); // no resume of the source, no abort of the destination
    expect(saved.every((r) => !r.completed.includes('commit') && r.state === 'running')).toBe(true);
  });
});
