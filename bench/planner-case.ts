/**
 * One case of the planner benchmark, run in a process of its own (bench/planner.ts starts it) so
 * that its peak RSS is its own: `node --import tsx bench/planner-case.ts HOSTS`. Prints one JSON line.
 */
import { PlanningState, generateCluster, planEvacuation, planRebalance, type RebalanceOptions, type RebalancePlan } from '@ferry/core';
import { referenceSearch, type ReferenceResult } from './reference-search.ts';

export interface Timing {
  /** every run's time, ms, in the order they ran */
  runs: number[];
  p50: number;
  /** the 99th percentile: with this few runs, the slowest */
  p99: number;
  /** CPU time (user + system) of the median run, ms: less sensitive than wall time to what else runs on the machine */
  cpuP50: number;
}

export interface PlanFigures {
  scoreBefore: number;
  scoreAfter: number;
  moves: number;
  gib: number;
  stopped: string;
  swaps: number;
  time: Timing;
}

export interface CaseResult {
  hosts: number;
  workloads: number;
  generateMs: number;
  indexMs: number;
  /** the default planner, to convergence */
  ferry: PlanFigures & { peakRssMiB: number; heapMiB: number };
  /** the full greedy search (10 and 100 hosts only) */
  reference?: ReferenceResult & { gib: number; peakRssMiB: number };
  /** Ferry without the polish (its swaps are the moves it makes beyond the reference's) */
  ferryNoPolish?: PlanFigures;
  /** Ferry with the reference's move count as its budget */
  ferryAtReferenceBudget?: PlanFigures;
  evacuation: { workloads: number; ms: number; moves: number; ok: boolean };
}

const GiB = 2 ** 30;
const peakRssMiB = () => process.resourceUsage().maxRSS / 1024;
const gib = (plan: RebalancePlan) => plan.moves.reduce((s, m) => s + m.bytes, 0) / GiB;

/** Below this many hosts the reference search runs (it is O(workloads × hosts) per step). */
export const REFERENCE_UP_TO = 100;
/** Timed runs of each plan: the machine is shared, so one run says little. */
const RUNS: Record<number, number> = { 10: 9, 100: 9, 1000: 7, 10_000: 3 };

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;

/** Plans `runs` times on the same state (each plan undoes its moves); the plans are identical (no time budget is reached), the times differ. */
function timed(state: PlanningState, options: Partial<RebalanceOptions>, runs: number): PlanFigures & { plan: RebalancePlan } {
  const times: number[] = [];
  const cpu: number[] = [];
  let plan: RebalancePlan | undefined;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    const c = process.cpuUsage();
    plan = planRebalance(state, options);
    times.push(performance.now() - t);
    const used = process.cpuUsage(c);
    cpu.push((used.user + used.system) / 1000);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const median = times.indexOf(percentile(sorted, 50));
  const p = plan!;
  return {
    plan: p,
    scoreBefore: p.scoreBefore,
    scoreAfter: p.scoreAfter,
    moves: p.moves.length,
    gib: gib(p),
    stopped: p.stopped,
    swaps: p.stats.swaps,
    time: { runs: times, p50: percentile(sorted, 50), p99: percentile(sorted, 99), cpuP50: cpu[median]! },
  };
}

export function runCase(hosts: number): CaseResult {
  let t = performance.now();
  // 20 containers per host, 20 × hosts in all: 10 % of hosts packed to ~90 %, 10 % nearly empty (0–4), the others share the rest
  const cluster = generateCluster({ hosts, perHost: [20, 20], workloads: 20 * hosts, seed: 42 });
  const generateMs = performance.now() - t;
  t = performance.now();
  const state = new PlanningState(cluster);
  const indexMs = performance.now() - t;
  const heapBefore = process.memoryUsage().heapUsed;
  // to convergence: no move budget, a time budget well above the target
  const toConvergence = { maxMoves: Number.POSITIVE_INFINITY, timeBudgetMs: 120_000 };
  const runs = RUNS[hosts] ?? 3;
  const { plan: _plan, ...ferry } = timed(state, toConvergence, runs);
  const result: CaseResult = {
    hosts,
    workloads: cluster.workloads.length,
    generateMs,
    indexMs,
    ferry: { ...ferry, peakRssMiB: peakRssMiB(), heapMiB: Math.max(0, process.memoryUsage().heapUsed - heapBefore) / 2 ** 20 },
    evacuation: { workloads: 0, ms: 0, moves: 0, ok: false },
  };
  if (hosts <= REFERENCE_UP_TO) {
    const reference = referenceSearch(state);
    result.reference = { ...reference, gib: reference.bytes / GiB, peakRssMiB: peakRssMiB() };
    const { plan: _a, ...noPolish } = timed(state, { ...toConvergence, polish: false }, runs);
    result.ferryNoPolish = noPolish;
    const { plan: _b, ...budgeted } = timed(state, { maxMoves: reference.moves, timeBudgetMs: 120_000 }, runs);
    result.ferryAtReferenceBudget = budgeted;
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
