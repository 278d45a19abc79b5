import { describe, expect, it } from 'vitest';
import type { NatsConnection } from 'nats';
import type { DeferredMigrationStep, HostRecord, MigrationRecord, WorkloadRecord } from '@ferry/protocol';
import { pino } from 'pino';
import type { Logger } from '@ferry/runtime';
import type { ClusterStore } from '@ferry/store';
import { AgentCallError, type AgentClient } from '../workloads/agent-client.ts';
import { cleanupBackoffMs, DEFAULT_TIMEOUTS, MigrationRunner } from './runner.ts';

/** A committed migration: only its cleanup remains. */
const committed = (strategy: MigrationRecord['strategy']): MigrationRecord => ({
  id: 'm-w1-abc',
  workloadId: 'w1',
  source: 'h1',
  destination: 'h2',
  destinationReason: 'asked',
  requested: { mode: 'live', strategy },
  strategy,
  strategyReason: 'asked',
  state: 'running',
  phase: 'commit',
  completed: ['validate', 'reserve', 'prepare', 'presync', 'freeze', 'transfer', 'restore', 'verify', 'commit'],
  timeline: [],
  bytes: { sent: 0, total: 0 },
  rounds: 0,
  freeze: { agentMs: 10 },
  transfer: null,
  wasRunning: true,
  epochFrom: 1,
  epochTo: 2,
  cancelRequested: false,
  error: null,
  rollback: null,
  createdAt: 0,
  updatedAt: 0,
  finishedAt: null,
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
    const done = await new MigrationRunner(committed('stop-and-copy'), store, agents, nc, log, async () => undefined).run();
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
    const done = await new MigrationRunner(committed('stop-and-copy'), store, agents, nc, capture().log, async () => undefined, { ...DEFAULT_TIMEOUTS, cleanupRetryMs: 0 }).run();
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
    const done = await new MigrationRunner(committed('stop-and-copy'), store, agents, nc, log, async () => undefined).run();
    expect(done.state).toBe('completed');
    expect(text()).not.toContain('pulling pages');
    expect(calls).toEqual(['h1 migration.finish source']); // no abandon; the destination's finish is deferred
    expect(deferred.map((d) => d.step)).toEqual(['finish-destination']);
  }, 10_000);
});
