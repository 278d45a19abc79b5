import type { PipelineCommand } from '@ferry/core';
import type { AgentRequest, AgentResult, AgentStepTime, MigrationRecord, WorkloadRecord } from '@ferry/protocol';

/** A reason to stop the migration (and roll back, before the commit). */
export class MigrationFailure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'MigrationFailure';
  }
}

/** What a phase adds to its timeline entry. */
export type PhaseOutcome = { bytes?: number; note?: string } | void;

type Transfer = NonNullable<MigrationRecord['transfer']>;

/**
 * What a phase's request builder and result handler may use of the runner. Every write and every
 * secret goes through the runner (fenced by the workload lock); the steps only shape requests and
 * read results.
 */
export interface StepContext {
  record(): MigrationRecord;
  /** the workload record this run loaded last, or a fresh one */
  workload(): Promise<WorkloadRecord>;
  /** whether the scheduler proved both hosts mount the workload's pool */
  sharedRootfs(pool: string): Promise<boolean>;
  sourceAddress(): Promise<string>;
  /** the migration's rsync secret (made anew, under the lock, with `create`) */
  secret(create?: boolean): Promise<string>;
  tls(): Promise<{ certPem: string; keyPem: string }>;
  keepTls(tls: { certPem: string; keyPem: string }): Promise<void>;
  requireTransfer(): Transfer;
  save(patch: Partial<MigrationRecord>): Promise<void>;
  addBytes(bytes: number): Promise<void>;
}

/** One agent command of the pipeline: its request from the record, and what its result changes. */
export interface AgentStep<C extends PipelineCommand> {
  request(ctx: StepContext): Promise<AgentRequest<C>>;
  done(ctx: StepContext, result: AgentResult<C>): Promise<PhaseOutcome>;
}

function endpoint(ctx: StepContext) {
  const t = ctx.requireTransfer();
  return { address: t.address, rsyncPort: t.rsyncPort, pageServerPort: t.pageServerPort };
}

type Breakdown = NonNullable<MigrationRecord['freeze']['breakdown']>;

/** An agent's steps inside the freeze, as breakdown entries of `phase`. */
const entries = (phase: 'freeze' | 'transfer' | 'restore', side: 'source' | 'destination', steps: AgentStepTime[] | undefined): Breakdown => (steps ?? []).map((s) => ({ phase, side, ...s }));

/**
 * The freeze's breakdown once the workload runs again: the agents' steps, and the rest of the
 * agents' freeze (agentMs) as what lay between them — replies, the scheduler's writes, requests.
 */
export function completeBreakdown(agentSteps: Breakdown, agentMs: number | null): Breakdown {
  if (agentMs === null) return agentSteps;
  const inAgents = agentSteps.reduce((sum, e) => sum + e.ms, 0);
  return [...agentSteps, { phase: 'restore', side: 'scheduler', step: 'between the agents: replies, record writes, next requests', ms: Math.max(0, Math.round(agentMs - inAgents)) }];
}

/** Bytes a copy sent count in the migration's bytes. */
const counted = async (ctx: StepContext, result: { bytes: number }): Promise<PhaseOutcome> => {
  await ctx.addBytes(result.bytes);
  return { bytes: result.bytes };
};

/**
 * The request builder and result handler of every agent command a phase sends (which phase sends
 * which, from which side, with which timeout: MIGRATION_STRATEGY_REGISTRY in @ferry/core).
 */
export const AGENT_STEPS: { [C in PipelineCommand]: AgentStep<C> } = {
  'migration.prepare': {
    async request(ctx) {
      const r = ctx.record();
      const workload = await ctx.workload();
      const address = await ctx.sourceAddress();
      const sharedRootfs = await ctx.sharedRootfs(workload.spec.pool);
      return {
        migrationId: r.id,
        spec: workload.spec,
        epoch: r.epochTo,
        strategy: r.strategy,
        source: { hostId: r.source, address },
        secret: await ctx.secret(true),
        sharedRootfs,
      };
    },
    async done(ctx, { tls, ...result }) {
      // The page stream's certificate is a secret like the rsync password: Redis with a TTL, not the record.
      await ctx.keepTls(tls);
      await ctx.save({ transfer: { ...result, lazyPagesPort: null, frozenAt: null } });
      return { note: `rsync ${result.address}:${result.rsyncPort}${result.sharedRootfs ? ', root filesystem on a shared pool' : ''}` };
    },
  },
  'migration.presync': {
    async request(ctx) {
      const t = ctx.requireTransfer();
      // what the destination prepared the root from, when its prepare said: the source need not ask it again
      const known = t.rootfsBase === undefined ? {} : { destinationBase: t.rootfsBase };
      return { migrationId: ctx.record().id, destination: endpoint(ctx), secret: await ctx.secret(), sharedRootfs: t.sharedRootfs, ...known };
    },
    done: counted,
  },
  'migration.dump': {
    async request(ctx) {
      const r = ctx.record();
      return { migrationId: r.id, strategy: r.strategy, destination: endpoint(ctx), sharedRootfs: ctx.requireTransfer().sharedRootfs, tls: await ctx.tls() };
    },
    async done(ctx, result) {
      await ctx.save({
        transfer: { ...ctx.requireTransfer(), lazyPagesPort: result.lazyPagesPort, frozenAt: result.frozenAt },
        freeze: { ...ctx.record().freeze, breakdown: entries('freeze', 'source', result.steps), criu: { dumpFrozenMs: result.criu?.frozenMs ?? null, restoreMs: null } },
      });
      await ctx.addBytes(result.bytes);
      return { bytes: result.bytes, note: `dump ${Math.round(result.dumpMs)} ms` };
    },
  },
  'migration.transfer': {
    async request(ctx) {
      return { migrationId: ctx.record().id, destination: endpoint(ctx), secret: await ctx.secret(), sharedRootfs: ctx.requireTransfer().sharedRootfs };
    },
    async done(ctx, result) {
      const freeze = ctx.record().freeze;
      await ctx.save({ freeze: { ...freeze, breakdown: [...(freeze.breakdown ?? []), ...entries('transfer', 'source', result.steps)] } });
      return counted(ctx, result);
    },
  },
  'migration.restore': {
    async request(ctx) {
      const r = ctx.record();
      const t = ctx.requireTransfer();
      return { migrationId: r.id, strategy: r.strategy, source: { address: await ctx.sourceAddress(), lazyPagesPort: t.lazyPagesPort } };
    },
    async done(ctx, result) {
      const t = ctx.requireTransfer();
      const agentMs = t.frozenAt === null ? null : Math.max(0, result.restoredAt - t.frozenAt);
      const steps = [...(ctx.record().freeze.breakdown ?? []), ...entries('restore', 'destination', result.steps)];
      const criu = { dumpFrozenMs: ctx.record().freeze.criu?.dumpFrozenMs ?? null, restoreMs: result.criu?.restoreMs ?? null };
      await ctx.save({ freeze: { agentMs, breakdown: completeBreakdown(steps, agentMs), criu } });
      return { note: `restore ${Math.round(result.restoreMs)} ms${agentMs === null ? '' : `, frozen ${agentMs} ms`}` };
    },
  },
  'container.status': {
    async request(ctx) {
      return { id: ctx.record().workloadId };
    },
    async done(ctx, status) {
      const r = ctx.record();
      const want = r.wasRunning ? 'running' : 'created';
      if (status.epoch !== r.epochTo) throw new MigrationFailure('VERIFY_FAILED', `destination reports epoch ${status.epoch}, expected ${r.epochTo}`);
      if (r.wasRunning && status.state !== 'running') throw new MigrationFailure('VERIFY_FAILED', `workload is ${status.state} on ${r.destination}, not running`);
      return { note: `${status.state} on ${r.destination} (expected ${want}), epoch ${status.epoch}` };
    },
  },
};
