import type { MeasuredMigration, MigrationPrediction, MigrationRecord, MigrationStrategy, WorkloadRecord } from '@ferry/protocol';
import { strategyDefinition } from './migration-pipeline.ts';
import { sharedPoolProven, type ClusterSnapshot } from './snapshot.ts';

/** What moves cost on these machines (bench/RESULTS.md): the prior, before anything was measured. */
export interface CostModel {
  /** bytes per second a transfer achieves */
  linkBytesPerSecond: number;
  /** fixed seconds per migration (checks, preparation, commit, cleanup) */
  fixedSeconds: number;
  /** freeze of post-copy, flat in memory size */
  lazyFreezeMs: number;
  /** freeze per GiB of memory for stop-and-copy style moves */
  stopCopyFreezeMsPerGiB: number;
}

export const DEFAULT_COSTS: CostModel = { linkBytesPerSecond: 250 * 2 ** 20, fixedSeconds: 2, lazyFreezeMs: 400, stopCopyFreezeMsPerGiB: 4000 };

/** The cost model's own figures for one move (no learning). */
export function modelPrediction(strategy: MigrationStrategy, memoryBytes: number, bytes: number, costs: CostModel = DEFAULT_COSTS): { bytes: number; seconds: number; freezeMs: number } {
  const gib = memoryBytes / 2 ** 30;
  // the freeze's shape comes from the strategy's declaration: none for a cold move, flat for
  // post-copy (memory moves after the restore), proportional to memory for the others
  const { live, postCopy } = strategyDefinition(strategy);
  const freezeMs = !live ? 0 : postCopy ? costs.lazyFreezeMs : Math.max(costs.lazyFreezeMs, gib * costs.stopCopyFreezeMsPerGiB);
  return { bytes, seconds: costs.fixedSeconds + bytes / costs.linkBytesPerSecond, freezeMs };
}

export interface MoveToPredict {
  strategy: MigrationStrategy;
  source: string;
  destination: string;
  memoryBytes: number;
  bytes: number;
}

/** How many measured migrations of a kind a prediction needs before it trusts them over a wider kind. */
export const MIN_SAMPLES = 3;
/** The most recent measurements of a kind that count (older ones describe another cluster). */
export const MAX_SAMPLES = 50;

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/**
 * How far measurements of one quantity sit from the model: the median of measured / modelled over
 * the samples (robust to an outlier, learnable from three moves). One factor per quantity and kind
 * of move — it scales the model's shape (flat freeze for post-copy, proportional to memory for
 * stop-and-copy, fixed + bytes/throughput for the duration) to what this cluster does.
 */
function factor(samples: MeasuredMigration[], measured: (m: MeasuredMigration) => number | null, modelled: (m: MeasuredMigration) => number): number | null {
  const ratios = samples.flatMap((m) => {
    const value = measured(m);
    const model = modelled(m);
    return value === null || model <= 0 ? [] : [value / model];
  });
  return ratios.length >= MIN_SAMPLES ? median(ratios) : null;
}

/**
 * The prediction for one move: the cost model, scaled by what migrations of the same strategy
 * between the same two hosts measured — or, with fewer than MIN_SAMPLES of those, of the same
 * strategy on any hosts; with fewer still, the model as it is. `history` is newest first.
 */
export function predictMove(move: MoveToPredict, history: readonly MeasuredMigration[], costs: CostModel = DEFAULT_COSTS): MigrationPrediction {
  const model = modelPrediction(move.strategy, move.memoryBytes, move.bytes, costs);
  const sameStrategy = history.filter((m) => m.strategy === move.strategy);
  const samePair = sameStrategy.filter((m) => m.source === move.source && m.destination === move.destination);
  const modelOf = (m: MeasuredMigration) => modelPrediction(m.strategy, m.memoryBytes, m.bytes, costs);
  for (const [samples, basis] of [
    [samePair.slice(0, MAX_SAMPLES), `${move.strategy} ${move.source}→${move.destination}`],
    [sameStrategy.slice(0, MAX_SAMPLES), `${move.strategy}, any hosts`],
  ] as const) {
    const seconds = factor(
      samples,
      (m) => m.seconds,
      (m) => modelOf(m).seconds,
    );
    if (seconds === null) continue;
    const freeze = factor(
      samples,
      (m) => m.freezeMs,
      (m) => modelOf(m).freezeMs,
    );
    return {
      freezeMs: Math.round(model.freezeMs * (freeze ?? 1)),
      seconds: Math.round(model.seconds * seconds * 1000) / 1000,
      bytes: move.bytes,
      memoryBytes: move.memoryBytes,
      basis: `${samples.length} measured (${basis})`,
    };
  }
  return { freezeMs: Math.round(model.freezeMs), seconds: Math.round(model.seconds * 1000) / 1000, bytes: move.bytes, memoryBytes: move.memoryBytes, basis: 'model' };
}

/**
 * A completed migration as a measurement: its freeze (the agents' dump-to-running), its duration
 * from the first phase's start (queueing behind other migrations is not the move's cost) and the
 * bytes it sent. Null for one that did not complete or carries no prediction inputs.
 */
export function measuredFrom(record: MigrationRecord): MeasuredMigration | null {
  if (record.state !== 'completed' || record.finishedAt === null) return null;
  const started = record.timeline.length > 0 ? Math.min(...record.timeline.map((e) => e.startedAt)) : record.createdAt;
  return {
    migrationId: record.id,
    strategy: record.strategy,
    source: record.source,
    destination: record.destination,
    memoryBytes: record.predicted?.memoryBytes ?? 0,
    bytes: record.bytes.sent,
    freezeMs: strategyDefinition(record.strategy).live ? record.freeze.agentMs : null,
    seconds: Math.max(0, record.finishedAt - started) / 1000,
    predicted: record.predicted ?? null,
    at: record.finishedAt,
  };
}

/** Relative error of predictions over measured migrations: p50 and p90 of |predicted − measured| / measured. */
export function predictionError(measured: readonly MeasuredMigration[]): { samples: number; freeze: { p50: number; p90: number } | null; seconds: { p50: number; p90: number } | null } {
  const errors = (pick: (m: MeasuredMigration) => [number, number] | null) => {
    const values = measured.flatMap((m) => {
      const pair = pick(m);
      return pair && pair[1] > 0 ? [Math.abs(pair[0] - pair[1]) / pair[1]] : [];
    });
    if (values.length === 0) return null;
    const sorted = values.sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { p50: at(0.5), p90: at(0.9) };
  };
  return {
    samples: measured.filter((m) => m.predicted).length,
    freeze: errors((m) => (m.predicted && m.freezeMs !== null ? [m.predicted.freezeMs, m.freezeMs] : null)),
    seconds: errors((m) => (m.predicted ? [m.predicted.seconds, m.seconds] : null)),
  };
}

/**
 * The move's inputs as the cluster reports them: the memory the workload uses on its source (the
 * host's report; its limit while none was reported) and the bytes it will send — that memory if it
 * runs, plus its root filesystem unless both hosts see the same shared pool.
 */
export function moveToPredict(snapshot: ClusterSnapshot, workload: WorkloadRecord, destination: string, strategy: MigrationStrategy): MoveToPredict {
  const source = workload.hostId ?? '';
  const usage = snapshot.hosts.find((h) => h.id === source)?.capacity.containers.find((c) => c.id === workload.spec.id)?.usage ?? null;
  const memoryBytes = usage?.memoryBytes ?? workload.spec.resources.memoryMiB * 2 ** 20;
  const diskBytes = usage?.diskBytes ?? workload.spec.resources.diskMiB * 2 ** 20;
  const running = workload.phase === 'running';
  const shared = sharedPoolProven(snapshot, workload.spec.pool, source, destination);
  return { strategy, source, destination, memoryBytes, bytes: (running ? memoryBytes : 0) + (shared ? 0 : diskBytes) };
}
