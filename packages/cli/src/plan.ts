import { readFileSync } from 'node:fs';
import { buildEvacuationPlan, buildRebalancePlan } from '@ferry/core';
import { ClusterSnapshotDocument } from '@ferry/protocol';

import { UsageError } from './errors.ts';

export { UsageError };

export interface PlanOutput {
  kind: 'rebalance' | 'evacuate';
  snapshot: { revision: string; takenAt: number; hosts: number; workloads: number };
  ok: boolean;
  reason: string;
  moves: Array<{ workload: string; from: string; to: string; strategy: string; bytes: number }>;
  scoreBefore: number | null;
  scoreAfter: number | null;
  unplaced?: Array<{ workload: string; refused: Record<string, number> }>;
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
export function planOffline(kind: 'rebalance' | 'evacuate', snapshot: ClusterSnapshotDocument, options: { maxMoves?: number; host?: string }): PlanOutput {
  const started = process.hrtime.bigint();
  const about = { revision: snapshot.revision, takenAt: snapshot.takenAt, hosts: snapshot.hosts.length, workloads: snapshot.workloads.length };
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
  const moves = (m: Array<{ workload: string; from: string; to: string; strategy: string; predicted: { bytes: number } }>) =>
    m.map((x) => ({ workload: x.workload, from: x.from, to: x.to, strategy: x.strategy, bytes: x.predicted.bytes }));
  if (kind === 'rebalance') {
    const plan = buildRebalancePlan(snapshot, { ...(options.maxMoves ? { maxMoves: options.maxMoves } : {}) });
    return { kind, snapshot: about, ok: true, reason: plan.reason, moves: moves(plan.moves), scoreBefore: plan.scoreBefore, scoreAfter: plan.scoreAfter, seconds: seconds() };
  }
  if (!options.host) throw new UsageError('ferry plan evacuate needs a HOST');
  if (!snapshot.hosts.some((h) => h.id === options.host)) throw new UsageError(`the snapshot has no host ${options.host}`);
  const draft = buildEvacuationPlan(snapshot, options.host);
  if (!draft.ok) return { kind, snapshot: about, ok: false, reason: draft.reason, moves: [], scoreBefore: null, scoreAfter: null, unplaced: draft.unplaced, seconds: seconds() };
  return { kind, snapshot: about, ok: true, reason: draft.plan.reason, moves: moves(draft.plan.moves), scoreBefore: null, scoreAfter: null, seconds: seconds() };
}

export function formatTable(out: PlanOutput): string {
  const lines = [`${out.kind} plan on snapshot ${out.snapshot.revision} (${out.snapshot.hosts} hosts, ${out.snapshot.workloads} workloads), ${(out.seconds * 1000).toFixed(1)} ms`];
  lines.push(out.reason);
  if (out.scoreBefore !== null) lines.push(`score ${out.scoreBefore.toFixed(4)} → ${out.scoreAfter!.toFixed(4)}`);
  if (out.moves.length > 0) {
    lines.push('WORKLOAD  FROM  TO  STRATEGY  MIB');
    for (const m of out.moves) lines.push(`${m.workload}  ${m.from}  ${m.to}  ${m.strategy}  ${(m.bytes / 2 ** 20).toFixed(0)}`);
  }
  for (const u of out.unplaced ?? [])
    lines.push(
      `${u.workload}: nowhere to go (${Object.entries(u.refused)
        .map(([c, n]) => `${n}× ${c}`)
        .join(', ')})`,
    );
  return lines.join('\n');
}
