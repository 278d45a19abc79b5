import { readFileSync } from 'node:fs';
import { buildEvacuationPlan, buildRebalancePlan } from '@ferry/core';
import { ClusterSnapshotDocument } from '@ferry/protocol';

import { UsageError } from './errors.ts';
import { componentLines, type RebalanceBody } from './limits.ts';

export { UsageError };

export interface PlanOutput {
  kind: 'rebalance' | 'evacuate';
  snapshot: { revision: string; takenAt: number; hosts: number; workloads: number };
  ok: boolean;
  reason: string;
  /** stage: when it runs (after every move of an earlier stage); dependsOn: the moves (indexes) it needs completed */
  moves: Array<{ workload: string; from: string; to: string; strategy: string; bytes: number; stage: number; dependsOn: number[] }>;
  scoreBefore: number | null;
  scoreAfter: number | null;
  /** rebalance: the score's named terms (weighted) before and after */
  components?: { before: Record<string, number>; after: Record<string, number> };
  unplaced?: Array<{ workload: string; refused: Record<string, number>; reason?: string; busy?: string }>;
  seconds: number;
}

export function readSnapshot(file: string): ClusterSnapshotDocument {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read the snapshot ${file}: ${(err as Error).message}`);
  }
  const parsed = ClusterSnapshotDocument.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new UsageError(`${file} is not a Ferry cluster snapshot (GET /v1/cluster/snapshot): ${first.join('; ')}`);
  }
  return parsed.data;
}

/** The same planners the scheduler runs, on a snapshot file, with no service running. */
export function planOffline(kind: 'rebalance' | 'evacuate', snapshot: ClusterSnapshotDocument, options: RebalanceBody & { host?: string; partial?: boolean }): PlanOutput {
  const started = process.hrtime.bigint();
  const about = { revision: snapshot.revision, takenAt: snapshot.takenAt, hosts: snapshot.hosts.length, workloads: snapshot.workloads.length };
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
  const moves = (m: Array<{ workload: string; from: string; to: string; strategy: string; predicted: { bytes: number }; stage?: number; dependsOn?: number[] }>) =>
    m.map((x) => ({ workload: x.workload, from: x.from, to: x.to, strategy: x.strategy, bytes: x.predicted.bytes, stage: x.stage ?? 1, dependsOn: x.dependsOn ?? [] }));
  if (kind === 'rebalance') {
    // the request's fields the planner takes as they are: the API's defaults are the planner's
    const { maxMoves, minGain, moveCost, moveCostPerGiB, weights } = options;
    const plan = buildRebalancePlan(snapshot, {
      ...(maxMoves !== undefined ? { maxMoves } : {}),
      ...(minGain !== undefined ? { minGain } : {}),
      ...(moveCost !== undefined ? { moveCost } : {}),
      ...(moveCostPerGiB !== undefined ? { moveCostPerGiB } : {}),
      ...(weights !== undefined ? { weights } : {}),
    });
    return {
      kind,
      snapshot: about,
      ok: true,
      reason: plan.reason,
      moves: moves(plan.moves),
      scoreBefore: plan.scoreBefore,
      scoreAfter: plan.scoreAfter,
      ...(plan.components ? { components: plan.components } : {}),
      seconds: seconds(),
    };
  }
  if (!options.host) throw new UsageError('ferry plan evacuate needs a HOST');
  if (!snapshot.hosts.some((h) => h.id === options.host)) throw new UsageError(`the snapshot has no host ${options.host}`);
  const draft = buildEvacuationPlan(snapshot, options.host, { partial: options.partial === true });
  if (!draft.ok) return { kind, snapshot: about, ok: false, reason: draft.reason, moves: [], scoreBefore: null, scoreAfter: null, unplaced: draft.unplaced, seconds: seconds() };
  return {
    kind,
    snapshot: about,
    ok: true,
    reason: draft.plan.reason,
    moves: moves(draft.plan.moves),
    scoreBefore: null,
    scoreAfter: null,
    ...(draft.plan.unplaced ? { unplaced: draft.plan.unplaced } : {}),
    seconds: seconds(),
  };
}

export function formatTable(out: PlanOutput): string {
  const lines = [`${out.kind} plan on snapshot ${out.snapshot.revision} (${out.snapshot.hosts} hosts, ${out.snapshot.workloads} workloads), ${(out.seconds * 1000).toFixed(1)} ms`];
  lines.push(out.reason);
  if (out.scoreBefore !== null) lines.push(`score ${out.scoreBefore.toFixed(4)} → ${out.scoreAfter!.toFixed(4)}`);
  if (out.components) lines.push(...componentLines({ id: '', components: out.components }));
  if (out.moves.length > 0) {
    lines.push('WORKLOAD  FROM  TO  STRATEGY  MIB');
    for (const m of out.moves) lines.push(`${m.workload}  ${m.from}  ${m.to}  ${m.strategy}  ${(m.bytes / 2 ** 20).toFixed(0)}`);
  }
  for (const u of out.unplaced ?? []) {
    // busy: being created or mid-migration, it stays where it is for now (not a lack of room)
    const why =
      u.busy ??
      u.reason ??
      Object.entries(u.refused)
        .map(([c, n]) => `${n}× ${c}`)
        .join(', ');
    lines.push(u.busy ? `${u.workload}: stays for now (${why})` : `${u.workload}: nowhere to go (${why})`);
  }
  return lines.join('\n');
}
