import { MIGRATION_PHASES, type CriuReport, type HostRecord, type MigrationPhase, type MigrationRecord, type MigrationStrategy, type Problem, type WorkloadRecord } from '@ferry/protocol';
import { MIGRATION_STRATEGY_REGISTRY, UNDO_ORDER, implementedStrategies, strategyUnavailable, type MigrationStrategyDefinition, type UndoStep } from './migration-pipeline.ts';
import { DEFAULT_PLACEMENT_POLICY, hostProblems, placeWorkload, type PlacementPolicy } from './placement.ts';
import type { ClusterSnapshot } from './snapshot.ts';

export const MIN_CRIU_VERSION = '4.2';

/** Compares dotted versions numerically: "4.10" > "4.2". */
export function versionAtLeast(version: string, minimum: string): boolean {
  const a = version.split(/[.+~-]/).map((p) => Number.parseInt(p, 10) || 0);
  const b = minimum.split('.').map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  }
  return true;
}

const criuProblem = (host: HostRecord, criu: CriuReport | null): string | null => {
  if (!criu) return `host ${host.id} has no CRIU`;
  if (!criu.usable) return `CRIU on host ${host.id} fails its own check`;
  if (!versionAtLeast(criu.version, MIN_CRIU_VERSION)) return `CRIU ${criu.version} on host ${host.id} is older than ${MIN_CRIU_VERSION} (cannot dump TCP sockets on current kernels)`;
  return null;
};

/**
 * Whether the migration runner can drive iterative pre-copy rounds. It cannot yet: the registry
 * declares precopy not implemented, so it is neither chosen nor accepted (choosing it on hosts
 * that report mem_dirty_track would roll back every automatic live migration there).
 */
export const PRECOPY_IMPLEMENTED = MIGRATION_STRATEGY_REGISTRY.precopy.implemented;

export type StrategyChoice = { ok: true; strategy: MigrationStrategy; reason: string } | { ok: false; problem: Problem };

/**
 * Picks how memory moves, from both hosts' CRIU and kernel features and the registry
 * (MIGRATION_STRATEGY_REGISTRY): cold for a stopped workload (or when asked), else the implemented
 * strategy of lowest auto rank whose features both hosts have — iterative pre-copy once
 * implemented, post-copy (lazy pages) where both have userfaultfd, else stop-and-copy (page-server
 * only on request: its rollback needs the destination). A forced strategy is refused when it is not implemented, and checked against
 * the same features.
 */
export function chooseStrategy(source: HostRecord, destination: HostRecord, running: boolean, requested: { mode: 'auto' | 'live' | 'cold'; strategy: MigrationStrategy | null }): StrategyChoice {
  const refuse = (code: string, message: string): StrategyChoice => ({ ok: false, problem: { field: 'strategy', code, message } });
  if (!running) {
    if (requested.mode === 'live' || (requested.strategy && MIGRATION_STRATEGY_REGISTRY[requested.strategy].live)) {
      return refuse('NOT_RUNNING', 'the workload is stopped: only a cold migration can move it');
    }
    return { ok: true, strategy: 'cold', reason: 'the workload is stopped: its root filesystem moves, nothing else' };
  }
  if (requested.mode === 'cold' || (requested.strategy && !MIGRATION_STRATEGY_REGISTRY[requested.strategy].live)) {
    return { ok: true, strategy: 'cold', reason: 'cold migration requested: the workload stops, moves and starts again' };
  }
  const problems = [criuProblem(source, source.capacity.criu), criuProblem(destination, destination.capacity.criu)].filter((p): p is string => p !== null);
  if (problems.length > 0) return refuse('CRIU_UNSUPPORTED', `live migration needs CRIU ≥ ${MIN_CRIU_VERSION} on both hosts: ${problems.join('; ')}`);
  const supported = (definition: MigrationStrategyDefinition) => definition.requires.every((feature) => source.capacity.criu!.features[feature] && destination.capacity.criu!.features[feature]);
  if (requested.strategy) {
    const unavailable = strategyUnavailable(requested.strategy);
    if (unavailable) return refuse(unavailable.code, unavailable.message);
    const definition = MIGRATION_STRATEGY_REGISTRY[requested.strategy];
    if (!supported(definition) && definition.unsupported) return refuse(definition.unsupported.code, definition.unsupported.message);
    return { ok: true, strategy: requested.strategy, reason: `${requested.strategy} requested` };
  }
  const automatic = implementedStrategies()
    .filter((d) => d.live && d.auto !== null && supported(d))
    .sort((a, b) => a.auto!.rank - b.auto!.rank)[0];
  if (!automatic) return refuse('STRATEGY_UNAVAILABLE', 'no implemented live strategy works on both hosts');
  return { ok: true, strategy: automatic.name, reason: automatic.auto!.reason };
}

export interface RoundStats {
  /** bytes of dirty memory sent in this round */
  bytes: number;
  ms: number;
}

export interface PrecopyLimits {
  maxRounds: number;
  /** a round at most this big is small enough to freeze after */
  smallEnoughBytes: number;
  /** a round bigger than this fraction of the previous one is not shrinking any more */
  shrinkRatio: number;
}

export const DEFAULT_PRECOPY_LIMITS: PrecopyLimits = { maxRounds: 8, smallEnoughBytes: 4 * 1024 * 1024, shrinkRatio: 0.8 };

/** P.Haul / Xen stop rules for iterative pre-copy: a reason to stop, or null to run another round. */
export function precopyStopReason(rounds: RoundStats[], limits: PrecopyLimits = DEFAULT_PRECOPY_LIMITS): string | null {
  const last = rounds[rounds.length - 1];
  if (!last) return null;
  if (rounds.length >= limits.maxRounds) return `round limit (${limits.maxRounds}) reached`;
  if (last.bytes <= limits.smallEnoughBytes) return `last round (${last.bytes} B) is small enough`;
  const previous = rounds[rounds.length - 2];
  if (previous && last.bytes > previous.bytes * limits.shrinkRatio) return `rounds stopped shrinking (${previous.bytes} B → ${last.bytes} B)`;
  return null;
}

/**
 * The phases a strategy runs, in order, as the registry declares them: pre-copy rounds only for
 * precopy; a cold migration has nothing to freeze or transfer after its root filesystem moved.
 */
export function phasesFor(strategy: MigrationStrategy): MigrationPhase[] {
  return MIGRATION_STRATEGY_REGISTRY[strategy].phases.map((p) => p.phase);
}

/**
 * From this phase on a live strategy's source may be frozen or dumped: a failure rolls back by
 * resuming it there. Each strategy declares its own (`frozenFrom`; cold: the restore).
 */
export const FIRST_FROZEN_PHASE: MigrationPhase = MIGRATION_STRATEGY_REGISTRY.lazy.frozenFrom;

export type ResumeDecision = { action: 'continue'; from: MigrationPhase } | { action: 'rollback'; reason: string } | { action: 'cleanup' } | { action: 'done' };

const phaseIndex = (phase: MigrationPhase) => MIGRATION_PHASES.indexOf(phase);

/**
 * Past the point of no return but not yet committed: the destination verified that it runs the
 * workload, and the commit (one Redis write) has not landed. Such a migration only goes forward.
 */
export function committing(record: Pick<MigrationRecord, 'phase' | 'completed'>): boolean {
  return record.phase === 'commit' && record.completed.includes('verify') && !record.completed.includes('commit');
}

/**
 * What a worker that picks up a migration (first run, retry, or after another worker died) does,
 * from the recorded state alone. Steps before the freeze are idempotent and simply run again; a
 * phase at or after the freeze that did not finish cannot be trusted, so it rolls back, unless
 * the destination verified the workload (the commit is then tried again) or the commit is
 * recorded: after it nothing fails back, cleanup runs until done.
 */
export function decideResume(record: Pick<MigrationRecord, 'state' | 'phase' | 'completed' | 'cancelRequested' | 'strategy'>, committed: boolean): ResumeDecision {
  if (record.state === 'completed' || record.state === 'rolled-back' || record.state === 'failed') return { action: 'done' };
  if (committed || record.completed.includes('commit')) return { action: 'cleanup' };
  if (record.state === 'rolling-back') return { action: 'rollback', reason: 'a rollback was under way' };
  // The destination verified it runs the workload; what was left is one Redis write. Undoing
  // would stop a running workload to bring it back from images (impossible once a lazy source
  // has sent its last page): the commit is retried instead — a cancel comes too late here.
  if (committing(record)) return { action: 'continue', from: 'commit' };
  if (record.cancelRequested) return { action: 'rollback', reason: 'cancelled' };
  const interrupted = record.state === 'running' && !record.completed.includes(record.phase);
  if (interrupted && phaseIndex(record.phase) >= phaseIndex(MIGRATION_STRATEGY_REGISTRY[record.strategy].frozenFrom)) {
    return { action: 'rollback', reason: `interrupted during ${record.phase}` };
  }
  const next = phasesFor(record.strategy).find((phase) => !record.completed.includes(phase));
  return next ? { action: 'continue', from: next } : { action: 'cleanup' };
}

/**
 * Rollback steps needed after these phases completed (or started), in order: the undo of every
 * phase of the strategy's pipeline up to the furthest one started, each once, in UNDO_ORDER:
 * once dumped, the source is made ready first, then the destination's copy goes, then the source
 * runs the workload again (never two copies at once). Before the freeze the source only keeps
 * what the presync staged, and resume-source removes it.
 */
export function rollbackSteps(started: MigrationPhase[], strategy: MigrationStrategy): UndoStep[] {
  const phases = MIGRATION_STRATEGY_REGISTRY[strategy].phases;
  const furthest = Math.max(-1, ...started.map(phaseIndex));
  const undo = new Set(phases.filter((p) => phaseIndex(p.phase) <= furthest).flatMap((p) => p.undo));
  return UNDO_ORDER.filter((step) => undo.has(step));
}

export type MigrationPlan =
  | {
      ok: true;
      destination: string;
      destinationReason: string;
      strategy: MigrationStrategy;
      strategyReason: string;
    }
  | { ok: false; code: 'NOT_FOUND' | 'BAD_REQUEST' | 'CONFLICT'; message: string; problems: Problem[] };

const refused = (code: 'NOT_FOUND' | 'BAD_REQUEST' | 'CONFLICT', message: string, problems: Problem[] = []): MigrationPlan => ({
  ok: false,
  code,
  message,
  problems,
});

/**
 * Decides whether and where a workload can move, and how, refusing up front with every reason:
 * the checks a migration job repeats in its validate phase.
 */
export function planMigration(
  workload: WorkloadRecord,
  snapshot: ClusterSnapshot,
  request: { destination?: string | undefined; mode: 'auto' | 'live' | 'cold'; strategy?: MigrationStrategy | undefined },
  policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY,
): MigrationPlan {
  const id = workload.spec.id;
  if (!workload.hostId) return refused('CONFLICT', `workload ${id} is not placed on any host yet`);
  if (workload.phase !== 'running' && workload.phase !== 'stopped') {
    return refused('CONFLICT', `workload ${id} is ${workload.phase}; only a running or stopped workload can move`);
  }
  const source = snapshot.hosts.find((h) => h.id === workload.hostId);
  if (!source) return refused('CONFLICT', `the source host ${workload.hostId} is unknown`);
  if (source.state !== 'up') return refused('CONFLICT', `the source host ${source.id} is ${source.state}: that is a failover, not a migration`);
  const running = workload.phase === 'running';
  const migrating = { cpu: workload.cpu ?? source.capacity.cpu, from: source.id };

  let destination: HostRecord;
  let destinationReason: string;
  if (request.destination) {
    if (request.destination === source.id) {
      return refused('BAD_REQUEST', `workload ${id} already runs on ${source.id}`, [{ field: 'destination', code: 'SAME_HOST', message: 'destination is the source host' }]);
    }
    const found = snapshot.hosts.find((h) => h.id === request.destination);
    if (!found) return refused('NOT_FOUND', `no host ${request.destination}`, [{ field: 'destination', code: 'HOST_UNKNOWN', message: `no host ${request.destination}` }]);
    const problems = hostProblems(workload.spec, found, snapshot, policy, { migrating });
    if (problems.length > 0) {
      return refused(
        'CONFLICT',
        `${found.id} cannot take ${id}: ${problems.map((p) => p.message).join('; ')}`,
        problems.map((p) => ({ field: 'destination', code: p.code, message: p.message })),
      );
    }
    destination = found;
    destinationReason = `requested; ${found.id} passes every check`;
  } else {
    const placed = placeWorkload(workload.spec, snapshot, policy, { migrating, exclude: source.id });
    if (!placed.ok) {
      return refused(
        'CONFLICT',
        `no host can take ${id}: ${
          Object.entries(placed.refused)
            .map(([code, n]) => `${n}× ${code}`)
            .join(', ') || 'there is no other host'
        }`,
        placed.refusals.map((r) => ({ field: `hosts.${r.hostId}`, code: r.code, message: r.message })),
      );
    }
    destination = snapshot.hosts.find((h) => h.id === placed.decision.hostId)!;
    destinationReason = placed.decision.reason;
  }
  const choice = chooseStrategy(source, destination, running, { mode: request.mode, strategy: request.strategy ?? null });
  if (!choice.ok) return refused('CONFLICT', choice.problem.message, [choice.problem]);
  return { ok: true, destination: destination.id, destinationReason, strategy: choice.strategy, strategyReason: choice.reason };
}

/**
 * Every reason `hostId` cannot take this workload now (the same checks placement, planning and the
 * migration job use), or none: GET /v1/compat.
 */
export function compatibility(workload: WorkloadRecord, hostId: string, snapshot: ClusterSnapshot, policy: PlacementPolicy = DEFAULT_PLACEMENT_POLICY): Problem[] {
  const host = snapshot.hosts.find((h) => h.id === hostId);
  if (!host) return [{ field: 'host', code: 'HOST_UNKNOWN', message: `no host ${hostId}` }];
  const source = snapshot.hosts.find((h) => h.id === workload.hostId);
  const problems: Problem[] = [];
  // SAME_HOST, like every other refusal, comes from the feasibility checks
  const placed = workload.hostId !== null;
  const migrating = placed ? { migrating: { cpu: workload.cpu ?? source?.capacity.cpu ?? host.capacity.cpu, ...(workload.hostId ? { from: workload.hostId } : {}) } } : {};
  for (const p of hostProblems(workload.spec, host, snapshot, policy, migrating)) {
    problems.push({ field: 'host', code: p.code, message: p.message });
  }
  if (placed && source && workload.phase === 'running') {
    for (const [h, criu] of [
      [source, source.capacity.criu],
      [host, host.capacity.criu],
    ] as const) {
      const why = criuProblem(h, criu);
      if (why) problems.push({ field: 'host', code: 'CRIU_UNSUPPORTED', message: why });
    }
  }
  return problems;
}

/** A new migration's record, as the API (one move) and a plan's execution (many) create it. */
export function newMigrationRecord(
  id: string,
  workload: WorkloadRecord,
  move: { destination: string; destinationReason: string; strategy: MigrationStrategy; strategyReason: string; requested: MigrationRecord['requested'] },
  now: number,
): MigrationRecord {
  return {
    id,
    workloadId: workload.spec.id,
    source: workload.hostId!,
    destination: move.destination,
    destinationReason: move.destinationReason,
    requested: move.requested,
    strategy: move.strategy,
    strategyReason: move.strategyReason,
    state: 'queued',
    phase: 'validate',
    completed: [],
    timeline: [],
    bytes: { sent: 0, total: 0 },
    rounds: 0,
    freeze: { agentMs: null },
    transfer: null,
    wasRunning: workload.phase === 'running',
    epochFrom: workload.epoch,
    epochTo: workload.epoch + 1,
    cancelRequested: false,
    error: null,
    rollback: null,
    createdAt: now,
    updatedAt: now,
    finishedAt: null,
  };
}
