/**
 * One case of the planner benchmark, run in a process of its own (bench/planner.ts starts it) so
 * that its peak RSS is its own: `node --import tsx bench/planner-case.ts HOSTS`. Prints one JSON line.
 */
import { PlanningState, generateCluster, planEvacuation, planRebalance, type RebalancePlan } from '@ferry/core';
import { referenceSearch, type ReferenceResult } from './reference-search.ts';

export interface CaseResult {
  hosts: number;
  workloads: number;
  generateMs: number;
  indexMs: number;
  ferry: { scoreBefore: number; scoreAfter: number; moves: number; gib: number; ms: number; stopped: string; swaps: number; peakRssMiB: number };
  /** the full greedy search (10 and 100 hosts only) */
  reference?: ReferenceResult & { gib: number; peakRssMiB: number };
  /** Ferry with the reference's move count as its budget */
  ferryAtReferenceBudget?: { scoreAfter: number; moves: number; gib: number; ms: number };
  evacuation: { workloads: number; ms: number; moves: number; ok: boolean };
}

const GiB = 2 ** 30;
const peakRssMiB = () => process.resourceUsage().maxRSS / 1024;
const gib = (plan: RebalancePlan) => plan.moves.reduce((s, m) => s + m.bytes, 0) / GiB;

/** Below this many hosts the reference search runs (it is O(workloads × hosts) per step). */
export const REFERENCE_UP_TO = 100;

export function runCase(hosts: number): CaseResult {
  let t = performance.now();
  // 20 containers per host (10 % of hosts packed to ~90 %, 10 % nearly empty: 0–4)
  const cluster = generateCluster({ hosts, perHost: [20, 20], seed: 42 });
  const generateMs = performance.now() - t;
  t = performance.now();
  const state = new PlanningState(cluster);
  const indexMs = performance.now() - t;
  t = performance.now();
  // to convergence: no move budget, a time budget well above the target
  const plan = planRebalance(state, { maxMoves: Number.POSITIVE_INFINITY, timeBudgetMs: 120_000 });
  const ms = performance.now() - t;
  const result: CaseResult = {
    hosts,
    workloads: cluster.workloads.length,
    generateMs,
    indexMs,
    ferry: { scoreBefore: plan.scoreBefore, scoreAfter: plan.scoreAfter, moves: plan.moves.length, gib: gib(plan), ms, stopped: plan.stopped, swaps: plan.stats.swaps, peakRssMiB: peakRssMiB() },
    evacuation: { workloads: 0, ms: 0, moves: 0, ok: false },
  };
  if (hosts <= REFERENCE_UP_TO) {
    const reference = referenceSearch(state);
    result.reference = { ...reference, gib: reference.bytes / GiB, peakRssMiB: peakRssMiB() };
    t = performance.now();
    const budgeted = planRebalance(state, { maxMoves: reference.moves, timeBudgetMs: 120_000 });
    result.ferryAtReferenceBudget = { scoreAfter: budgeted.scoreAfter, moves: budgeted.moves.length, gib: gib(budgeted), ms: performance.now() - t };
  }
  // the evacuation of the host with the most workloads
  const counts = state.usage.residents.map((r) => r.size);
  const victim = counts.indexOf(Math.max(...counts));
  t = performance.now();
  const evacuation = planEvacuation(state, [cluster.hosts[victim]!.id], { keepHaCapacity: true });
  result.evacuation = { workloads: counts[victim]!, ms: performance.now() - t, moves: evacuation.moves.length, ok: evacuation.ok };
  return result;
}

if (process.argv[1]?.endsWith('planner-case.ts')) console.log(JSON.stringify(runCase(Number(process.argv[2]))));
