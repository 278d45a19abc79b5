import { describe, expect, it } from 'vitest';
import { DEFAULT_MIGRATION_TIMEOUTS, implementedStrategies, type PhaseDefinition } from '@ferry/core';
import type { MigrationPhase, MigrationStrategy, WorkloadRecord } from '@ferry/protocol';
import { LockLostError } from '@ferry/store';
import { FAILURE_KINDS, Harness, type AgentCall, type Fault, type FailureKind } from './testing/harness.ts';

/**
 * The runner against fake agents: every implemented strategy × every phase × every failure kind.
 * Expectations are written from what a migration must do, not read back from the registry: the
 * registry only says which phases a strategy runs and where their requests go.
 */

const STRATEGIES = implementedStrategies().map((s) => s.name);
const phasesOf = (strategy: MigrationStrategy) => implementedStrategies().find((s) => s.name === strategy)!.phases;
const hostOf = (side: 'source' | 'destination') => (side === 'source' ? 'h1' : 'h2');
const short = (calls: AgentCall[]) =>
  calls.map((c) => `${c.hostId} ${c.command}${c.request.role ? ` ${c.request.role}` : ''}${c.request.abandon ? ' abandon' : ''}${c.request.readyOnly ? ' ready' : ''}`);

/**
 * The rollback a failure in `phase` needs: nothing before the destination was asked for anything;
 * once the source was frozen, it gets ready first; the destination's copy always goes before the
 * source runs the workload again (never two copies).
 */
function expectedUndo(strategy: MigrationStrategy, phase: MigrationPhase): string[] {
  if (phase === 'validate' || phase === 'reserve') return [];
  if (phase === 'prepare') return ['abort-destination'];
  if (phase === 'presync' || strategy === 'cold') return ['abort-destination', 'resume-source'];
  return ['ready-source', 'abort-destination', 'resume-source'];
}
const UNDO_CALL: Record<string, string> = { 'ready-source': 'h1 migration.resume ready', 'resume-source': 'h1 migration.resume', 'abort-destination': 'h2 migration.abort' };

/** The agent requests of the phases before `phase` (and of it), as a healthy run sends them. */
function forwardCalls(strategy: MigrationStrategy, upTo: MigrationPhase, including: boolean): string[] {
  const phases = phasesOf(strategy);
  const until = phases.findIndex((p) => p.phase === upTo) + (including ? 1 : 0);
  return phases.slice(0, until).flatMap((p) => (p.side === 'scheduler' ? [] : [`${hostOf(p.side)} ${p.command}`]));
}

const CLEANUP_CALLS = ['h1 migration.finish source', 'h2 migration.finish destination'];

function faultFor(phase: PhaseDefinition, kind: FailureKind): Fault {
  if (phase.side === 'scheduler') return { kind: kind === 'lock-lost' ? 'lock-lost' : 'error', phase: phase.phase };
  return { kind, hostId: hostOf(phase.side), command: phase.command };
}

/** The scheduler's own steps fail in two ways (their check or write fails, the lock is lost); agent steps in four. */
const kindsFor = (phase: PhaseDefinition): FailureKind[] => (phase.side === 'scheduler' ? ['error', 'lock-lost'] : FAILURE_KINDS);

const CODES: Record<FailureKind, string> = { error: 'MIGRATION_FAILED', timeout: 'AGENT_TIMEOUT', restarted: 'AGENT_RESTARTED', 'lock-lost': '' };
const SCHEDULER_CODES: Partial<Record<MigrationPhase, string>> = { validate: 'HOST_DOWN', reserve: 'INTERNAL' };

const onSource = (w: WorkloadRecord, running: boolean) => expect(w).toMatchObject({ hostId: 'h1', epoch: 1, phase: running ? 'running' : 'stopped', migratingTo: null });

describe.each(STRATEGIES)('the %s pipeline', (strategy) => {
  const running = strategy !== 'cold';
  const beforeCommit = phasesOf(strategy).filter((p) => p.phase !== 'commit' && p.phase !== 'cleanup');

  it('runs every declared phase once, each request to its side with its timeout, and completes', async () => {
    const h = new Harness(strategy, { running });
    const done = await h.runner().run();
    expect(done.state).toBe('completed');
    expect(done.completed).toEqual(phasesOf(strategy).map((p) => p.phase));
    expect(short(h.calls)).toEqual([...forwardCalls(strategy, 'commit', false), ...CLEANUP_CALLS]);
    for (const call of h.calls.filter((c) => c.command !== 'migration.finish')) {
      const phase = phasesOf(strategy).find((p) => p.side !== 'scheduler' && p.command === call.command)!;
      expect(call.timeoutMs).toBe(DEFAULT_MIGRATION_TIMEOUTS[phase.timeout!]);
    }
    expect(h.workload).toMatchObject({ hostId: 'h2', epoch: 2, phase: running ? 'running' : 'stopped', migratingTo: null });
    expect(h.events.map((e) => `${e.phase} ${e.status}`)).toEqual([...phasesOf(strategy).flatMap((p) => [`${p.phase} started`, `${p.phase} done`]), 'cleanup completed']);
    expect(h.ended).toHaveLength(1);
    expect(h.kv.size).toBe(0); // the secret and the certificate are gone
    if (strategy === 'lazy') expect(done.bytes.sent).toBe(1000 + 0 + 1000 + 500); // presync, dump, transfer, pages pulled after the restore
  });

  for (const phase of beforeCommit) {
    for (const kind of kindsFor(phase)) {
      if (kind === 'lock-lost') continue;
      it(`rolls back a failure (${kind}) in ${phase.phase}: the declared undo steps in order, the workload on its source`, async () => {
        const h = new Harness(strategy, { running });
        h.faults = [faultFor(phase, kind)];
        const done = await h.runner().run();
        expect(done.state).toBe('rolled-back');
        const undo = expectedUndo(strategy, phase.phase);
        expect(done.rollback?.steps).toEqual(undo);
        expect(done.error).toMatchObject({ phase: phase.phase, code: phase.side === 'scheduler' ? SCHEDULER_CODES[phase.phase] : CODES[kind] });
        expect(short(h.calls)).toEqual([...forwardCalls(strategy, phase.phase, phase.side !== 'scheduler'), ...undo.map((u) => UNDO_CALL[u])]);
        expect(done.completed).not.toContain(phase.phase);
        onSource(h.workload, running);
        expect(h.events.at(-1)).toMatchObject({ type: 'migration.finished', status: 'rolled-back' });
        expect(h.events).toContainEqual(expect.objectContaining({ phase: phase.phase, status: 'failed' }));
        expect(h.ended).toHaveLength(1);
        expect(h.kv.size).toBe(0);
      });
    }
  }

  for (const phase of phasesOf(strategy).filter((p) => p.phase !== 'cleanup')) {
    it(`stops at a lock lost in ${phase.phase}: nothing written, asked for or published after it, no rollback`, async () => {
      const h = new Harness(strategy, { running });
      h.faults = [faultFor(phase, 'lock-lost')];
      await expect(h.runner().run()).rejects.toBeInstanceOf(LockLostError);
      expect(h.afterLockLoss()).toEqual([]);
      expect(h.calls.some((c) => c.command === 'migration.resume' || c.command === 'migration.abort')).toBe(false);
      expect(h.ended).toHaveLength(0);
      expect(h.migration.state).toBe('running');
    });
  }

  it('retries a commit whose write failed instead of rolling back, and commits on the next pickup', async () => {
    const h = new Harness(strategy, { running });
    h.faults = [{ kind: 'error', phase: 'commit' }];
    await expect(h.runner().run()).rejects.toThrow(/max retries/);
    expect(short(h.calls)).toEqual(forwardCalls(strategy, 'commit', false)); // no resume, no abort
    expect(h.migration).toMatchObject({ state: 'running', phase: 'commit' });
    expect(h.migration.completed).not.toContain('commit');
    onSource({ ...h.workload, phase: running ? 'running' : 'stopped', migratingTo: null }, running);
    const done = await h.runner().run(); // the job, tried again
    expect(done.state).toBe('completed');
    expect(h.workload).toMatchObject({ hostId: 'h2', epoch: 2 });
    expect(short(h.calls).slice(-2)).toEqual(CLEANUP_CALLS);
  });

  for (const [hostId, step] of [
    ['h1', 'finish-source'],
    ['h2', 'finish-destination'],
  ] as const) {
    for (const kind of FAILURE_KINDS) {
      it(`after the commit, a failure (${kind}) of ${step} ${kind === 'lock-lost' ? 'stops the runner' : 'is deferred and the migration completes'}`, async () => {
        const h = new Harness(strategy, { running });
        h.faults = [{ kind, hostId, command: 'migration.finish' }];
        if (kind === 'lock-lost') {
          await expect(h.runner().run()).rejects.toBeInstanceOf(LockLostError);
          expect(h.afterLockLoss()).toEqual([]);
          expect(h.workload).toMatchObject({ hostId: 'h2', epoch: 2 }); // committed all the same
          return;
        }
        const done = await h.runner().run();
        expect(done.state).toBe('completed');
        expect(h.deferred).toEqual([expect.objectContaining({ hostId, step })]);
        expect(short(h.calls).slice(-2)).toEqual(CLEANUP_CALLS); // no rollback, and the other step still ran
      });
    }
  }

  it('honours a cancel before the next phase, and abandons a presync in flight', async () => {
    const h = new Harness(strategy, { running });
    h.cancel = true;
    const done = await h.runner().run();
    expect(done).toMatchObject({ state: 'rolled-back', error: { code: 'CANCELLED' } });
    expect(h.calls).toEqual([]);
  });
});

/**
 * Where the workload runs, as the agents' answers make it run: the source stops at its dump, a
 * destination restore runs it there (even one whose request timed out: it ended later), an abort
 * stops the destination's copy, a resume (not only getting ready) runs it on the source again.
 * Every call is checked against it: the workload must never run on both hosts.
 */
function trackCopies(h: Harness, restoreLands: boolean): { running: Set<string>; twice: string[] } {
  const running = new Set(['h1']);
  const twice: string[] = [];
  h.onCall = (call) => {
    if (call.command === 'migration.dump') running.delete('h1');
    if (call.command === 'migration.restore' && restoreLands) running.add('h2');
    if (call.command === 'migration.abort') running.delete('h2');
    if (call.command === 'migration.resume' && !call.request.readyOnly) running.add('h1');
    if (running.size > 1) twice.push(`${call.hostId} ${call.command}`);
  };
  return { running, twice };
}

describe.each(STRATEGIES.filter((s) => s !== 'cold'))("the %s rollback's order", (strategy) => {
  it.each(['timeout', 'restarted'] as const)('removes a destination restore that ended after its request failed (%s) before the source runs the workload again', async (kind) => {
    const h = new Harness(strategy);
    const copies = trackCopies(h, true);
    // the restore request times out (> restoreMs), but the destination's restore goes on and ends
    h.faults = [{ kind, hostId: 'h2', command: 'migration.restore' }];
    const done = await h.runner().run();
    expect(done).toMatchObject({ state: 'rolled-back', error: { phase: 'restore' } });
    expect(short(h.calls).slice(-3)).toEqual(['h1 migration.resume ready', 'h2 migration.abort', 'h1 migration.resume']);
    expect(copies.twice).toEqual([]);
    expect([...copies.running]).toEqual(['h1']);
    onSource(h.workload, true);
  });

  it('removes the copy the destination verified when a later failure rolls back (verify failing)', async () => {
    const h = new Harness(strategy);
    const copies = trackCopies(h, true);
    h.faults = [{ kind: 'timeout', hostId: 'h2', command: 'container.status' }];
    const done = await h.runner().run();
    expect(done).toMatchObject({ state: 'rolled-back', error: { phase: 'verify' } });
    expect(copies.twice).toEqual([]);
    expect([...copies.running]).toEqual(['h1']);
  });

  it('runs the same safe order again when the rollback is picked up after its abort failed', async () => {
    const h = new Harness(strategy);
    const copies = trackCopies(h, true);
    h.faults = [
      { kind: 'timeout', hostId: 'h2', command: 'migration.restore' },
      { kind: 'timeout', hostId: 'h2', command: 'migration.abort' },
    ];
    await expect(h.runner().run()).rejects.toThrow(/did not answer migration.abort/);
    // the source got ready but never ran the workload: the destination's copy was not removed
    expect(h.calls.filter((c) => c.command === 'migration.resume' && !c.request.readyOnly)).toEqual([]);
    const done = await h.runner().run();
    expect(done.state).toBe('rolled-back');
    expect(short(h.calls).slice(-3)).toEqual(['h1 migration.resume ready', 'h2 migration.abort', 'h1 migration.resume']);
    expect(copies.twice).toEqual([]);
  });
});

describe('a pipeline picked up again', () => {
  it('rolls back a freeze that was interrupted, and a rollback step that failed is run again on the next pickup', async () => {
    const h = new Harness('lazy');
    h.faults = [
      { kind: 'error', hostId: 'h2', command: 'migration.restore' },
      { kind: 'timeout', hostId: 'h1', command: 'migration.resume' },
    ];
    await expect(h.runner().run()).rejects.toThrow(/did not answer migration.resume/);
    expect(h.migration.state).toBe('rolling-back');
    // the source never said it could run the workload again: the destination's copy stays
    expect(short(h.calls).slice(-1)).toEqual(['h1 migration.resume ready']);
    const done = await h.runner().run();
    expect(done.state).toBe('rolled-back');
    expect(short(h.calls).slice(-4)).toEqual(['h1 migration.resume ready', 'h1 migration.resume ready', 'h2 migration.abort', 'h1 migration.resume']);
  });

  it("never aborts the destination when the source cannot run the workload again (a lazy source whose last page left): the destination's copy is the only one", async () => {
    const h = new Harness('lazy');
    h.faults = [
      { kind: 'error', hostId: 'h2', command: 'container.status' },
      { kind: 'error', hostId: 'h1', command: 'migration.resume' },
    ];
    await expect(h.runner().run()).rejects.toThrow(/migration.resume failed/);
    expect(h.migration.state).toBe('rolling-back');
    expect(h.calls.some((c) => c.command === 'migration.abort')).toBe(false);
    expect(short(h.calls).slice(-1)).toEqual(['h1 migration.resume ready']);
  });

  it.each(['lazy', 'page-server', 'stop-and-copy'] as const)('%s: a failure after the dump tells the source where its pages are only when the dump left them on the destination', async (strategy) => {
    const h = new Harness(strategy);
    h.faults = [{ kind: 'error', hostId: 'h2', command: 'migration.restore' }];
    const done = await h.runner().run();
    expect(done).toMatchObject({ state: 'rolled-back', rollback: { steps: ['ready-source', 'abort-destination', 'resume-source'] } });
    const [ready, resume] = h.calls.filter((c) => c.command === 'migration.resume');
    const presync = h.calls.find((c) => c.command === 'migration.presync')!;
    if (strategy === 'page-server') {
      // pulled back while the destination's transfer daemon still runs: before the abort stops it
      expect(ready!.request).toEqual({ migrationId: 'm-w1-test', readyOnly: true, pagesFrom: { destination: presync.request.destination, secret: presync.request.secret } });
    } else {
      expect(ready!.request).toEqual({ migrationId: 'm-w1-test', readyOnly: true });
    }
    expect(resume!.request).toEqual({ migrationId: 'm-w1-test' });
    expect(short(h.calls).slice(-3)).toEqual(['h1 migration.resume ready', 'h2 migration.abort', 'h1 migration.resume']);
  });

  it('defers a rollback step whose host is down', async () => {
    const h = new Harness('page-server');
    // the destination dies while it restores: its agent's new run fails the request, and it is declared down
    h.faults = [{ kind: 'restarted', hostId: 'h2', command: 'migration.restore' }];
    h.onCall = (call) => {
      if (call.command === 'migration.restore') h.hosts[1] = { ...h.hosts[1]!, state: 'down' };
    };
    const done = await h.runner().run();
    expect(done).toMatchObject({ state: 'rolled-back', rollback: { steps: ['ready-source', 'abort-destination', 'resume-source'] } });
    expect(short(h.calls).slice(-3)).toEqual(['h2 migration.restore', 'h1 migration.resume ready', 'h1 migration.resume']);
    expect(h.deferred).toEqual([expect.objectContaining({ hostId: 'h2', step: 'abort-destination' })]);
  });

  it("skips getting a source ready that is down, and defers its resume (the workload is failover's meanwhile)", async () => {
    const h = new Harness('stop-and-copy');
    h.faults = [{ kind: 'restarted', hostId: 'h1', command: 'migration.transfer' }];
    h.onCall = (call) => {
      if (call.command === 'migration.transfer') h.hosts[0] = { ...h.hosts[0]!, state: 'down' };
    };
    const done = await h.runner().run();
    expect(done).toMatchObject({ state: 'rolled-back', rollback: { steps: ['ready-source', 'abort-destination', 'resume-source'] } });
    expect(short(h.calls).slice(-2)).toEqual(['h1 migration.transfer', 'h2 migration.abort']);
    expect(h.deferred).toEqual([expect.objectContaining({ hostId: 'h1', step: 'resume-source' })]);
  });

  it("records where the freeze went: each agent's steps, and the rest as the time between the agents", async () => {
    const h = new Harness('lazy');
    const done = await h.runner().run();
    expect(done.freeze).toEqual({
      agentMs: 120,
      breakdown: [
        { phase: 'freeze', side: 'source', step: 'checkpoint', ms: 45 },
        { phase: 'transfer', side: 'source', step: 'rsync', ms: 5 },
        { phase: 'restore', side: 'destination', step: 'restore', ms: 50 },
        { phase: 'restore', side: 'scheduler', step: 'between the agents: replies, record writes, next requests', ms: 20 },
      ],
      criu: { dumpFrozenMs: 30, restoreMs: 40 },
    });
  });

  it('writes the record once between the agent calls of the freeze (each phase start carries what the frozen phase before it changed)', async () => {
    const h = new Harness('lazy');
    const done = await h.runner().run();
    expect(done.state).toBe('completed');
    const at = (command: string) => h.happened.findIndex((x) => x.type === 'call' && x.call.command === command);
    const writesBetween = (from: string, to: string) => h.happened.slice(at(from) + 1, at(to)).filter((x) => x.type === 'write').length;
    expect(writesBetween('migration.dump', 'migration.transfer')).toBe(1);
    expect(writesBetween('migration.transfer', 'migration.restore')).toBe(1);
    // nothing deferred is lost: the dump's and the transfer's results are in the record
    expect(done.transfer).toMatchObject({ lazyPagesPort: 9000, frozenAt: 1_000 });
    expect(done.completed).toEqual(expect.arrayContaining(['freeze', 'transfer', 'restore']));
    expect(done.timeline.find((e) => e.phase === 'transfer')).toMatchObject({ bytes: 1000 });
  });

  it('runs no presync on a pool both hosts are proven to mount (the skip rule), and records it', async () => {
    const h = new Harness('lazy', { pool: 'shared' });
    const done = await h.runner().run();
    expect(done.state).toBe('completed');
    expect(short(h.calls)).not.toContain('h1 migration.presync');
    expect(done.timeline.find((e) => e.phase === 'presync')).toMatchObject({ bytes: 0, note: 'shared pool: nothing to copy' });
  });
});
