import type { DeferredMigrationStep } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { withLock, type ClusterStore } from '@ferry/store';
import type { AgentClient } from '../workloads/agent-client.ts';

/**
 * Runs the migration steps that were skipped while their host was down, once it is up again
 * (the leader calls this every tick). Each step is idempotent on the agent; it is dropped once it
 * succeeded. A source resumes its copy only while it still owns the workload at the epoch the
 * migration started from — otherwise (failover gave the workload to another host) it only
 * clears what the migration left there.
 */
export class DeferredSteps {
  /** failed steps wait before their next try: 2 s, 4 s … at most a minute (this replica's memory) */
  private readonly backoff = new Map<string, { failures: number; nextAt: number }>();

  constructor(
    private readonly store: ClusterStore,
    private readonly agents: AgentClient,
    private readonly lockMs: number,
    private readonly log: Logger,
  ) {}

  async runDue(): Promise<number> {
    const steps = await this.store.deferredSteps.all();
    if (steps.length === 0) return 0;
    const up = new Set((await this.store.hosts.all()).filter((h) => h.state === 'up').map((h) => h.id));
    let done = 0;
    const now = Date.now();
    for (const step of steps.filter((s) => up.has(s.hostId))) {
      const key = `${step.migrationId}:${step.step}`;
      const waiting = this.backoff.get(key);
      if (waiting && now < waiting.nextAt) continue;
      try {
        const held = await withLock(this.store.redis, this.store.keys.workloadLock(step.workloadId), `deferred-${step.migrationId}`, this.lockMs, () => this.run(step));
        if (!held) continue; // busy: next tick
        await this.store.deferredSteps.remove(key);
        this.backoff.delete(key);
        done++;
      } catch (err) {
        const failures = (waiting?.failures ?? 0) + 1;
        const retryInMs = Math.min(60_000, 1_000 * 2 ** Math.min(failures, 6));
        this.backoff.set(key, { failures, nextAt: Date.now() + retryInMs });
        this.log.warn({ ...step, failures, retryInMs, err: (err as Error).message }, 'deferred migration step failed; will retry');
      }
    }
    for (const key of this.backoff.keys()) if (!steps.some((s) => `${s.migrationId}:${s.step}` === key)) this.backoff.delete(key);
    return done;
  }

  private async run(s: DeferredMigrationStep): Promise<void> {
    const { migrationId, hostId } = s;
    const log = this.log.child({ migrationId, hostId, step: s.step });
    switch (s.step) {
      case 'abort-destination':
        await this.agents.call(hostId, 'migration.abort', { migrationId }, 60_000);
        break;
      case 'finish-destination':
        await this.agents.call(hostId, 'migration.finish', { migrationId, role: 'destination' }, 60_000);
        break;
      case 'finish-source':
        await this.agents.call(hostId, 'migration.finish', { migrationId, role: 'source' }, 60_000);
        break;
      case 'resume-source': {
        const workload = await this.store.workloads.get(s.workloadId);
        if (workload && workload.hostId === hostId && workload.epoch === s.epochFrom) {
          await this.agents.call(hostId, 'migration.resume', { migrationId }, 120_000);
          if (workload.desired === 'running') await this.store.workloads.put(workload.spec.id, { ...workload, phase: 'running', updatedAt: Date.now() });
        } else {
          await this.agents.call(hostId, 'migration.finish', { migrationId, role: 'source' }, 60_000);
        }
        break;
      }
    }
    log.info('deferred migration step done');
  }
}
