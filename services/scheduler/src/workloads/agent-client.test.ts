import { describe, expect, it } from 'vitest';
import type { NatsConnection } from 'nats';
import { AgentCallError, AgentClient } from './agent-client.ts';

/** A NATS connection whose requests never get an answer (the agent took them and died). */
const unanswered = { request: () => new Promise<never>(() => undefined) } as unknown as NatsConnection;

describe('a request to an agent that restarts before it answered', () => {
  it('fails at once with AGENT_RESTARTED, not after its timeout', async () => {
    let run = '100@1';
    const client = new AgentClient(unanswered, () => run);
    const started = Date.now();
    const call = client.call('h2', 'migration.restore', { migrationId: 'm-w1-abc', strategy: 'lazy', source: { address: '10.0.0.1', lazyPagesPort: 1 } }, 120_000);
    setTimeout(() => (run = '200@2'), 200);
    const err = await call.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentCallError);
    expect((err as AgentCallError).code).toBe('AGENT_RESTARTED');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('waits on while the same run is reporting, or while no run is known', async () => {
    const answered = {
      request: () => new Promise((resolve) => setTimeout(() => resolve({ data: new TextEncoder().encode(JSON.stringify({ ok: true, result: { done: true } })) }), 1_200)),
    } as unknown as NatsConnection;
    const same = new AgentClient(answered, () => '100@1');
    await expect(same.call('h2', 'migration.abort', { migrationId: 'm-w1-abc' }, 5_000)).resolves.toEqual({ done: true });
    let run: string | null = null;
    const unknown = new AgentClient(answered, () => run);
    const call = unknown.call('h2', 'migration.abort', { migrationId: 'm-w1-abc' }, 5_000);
    run = '100@1'; // the first report arrives after the request was sent: nothing to compare with
    await expect(call).resolves.toEqual({ done: true });
  });
});

describe('a request in flight while NATS reconnects', () => {
  /** A connection whose first request is lost with the server; copies sent after a reconnect are answered. */
  function flaky() {
    const sent: number[] = [];
    let emit: ((s: { type: string }) => void) | null = null;
    const statuses = {
      [Symbol.asyncIterator]: () => ({ next: () => new Promise<IteratorResult<{ type: string }>>((resolve) => (emit = (s) => resolve({ value: s, done: false }))) }),
    };
    const nc = {
      status: () => statuses,
      request: () => {
        sent.push(Date.now());
        if (sent.length === 1) return new Promise<never>(() => undefined); // lost with the old connection
        return Promise.resolve({ data: new TextEncoder().encode(JSON.stringify({ ok: true, result: { done: true } })) });
      },
    } as unknown as NatsConnection;
    return { nc, sent, reconnect: () => emit?.({ type: 'reconnect' }) };
  }

  it("is sent again after the reconnection, and the copy's answer counts", async () => {
    const { nc, sent, reconnect } = flaky();
    const client = new AgentClient(nc, () => '100@1');
    const started = Date.now();
    const call = client.call('h2', 'migration.abort', { migrationId: 'm-w1-abc' }, 30_000);
    setTimeout(reconnect, 300);
    await expect(call).resolves.toEqual({ done: true });
    expect(sent).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('still times out when nothing answers any copy', async () => {
    const nc = {
      request: (_s: string, _d: Uint8Array, o: { timeout: number }) => new Promise((_, reject) => setTimeout(() => reject(Object.assign(new Error('TIMEOUT'), { code: 'TIMEOUT' })), o.timeout)),
    } as unknown as NatsConnection;
    const err = await new AgentClient(nc, () => '100@1').call('h2', 'migration.abort', { migrationId: 'm-w1-abc' }, 600).catch((e: unknown) => e);
    expect((err as AgentCallError).code).toBe('AGENT_TIMEOUT');
  });
});
