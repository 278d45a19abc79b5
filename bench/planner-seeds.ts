/**
 * The planner against the reference on more than one cluster: `node --import tsx bench/planner-seeds.ts`.
 * For seeds 42 and 1–5 at 10 and 100 hosts (20 containers per host), Ferry to convergence, the
 * full greedy search (bench/reference-search.ts), and Ferry with the reference's move count as its
 * budget. Not part of `npm run bench`: ~1 minute, most of it the reference.
 */
import { PlanningState, generateCluster, planRebalance } from '@ferry/core';
import { referenceSearch } from './reference-search.ts';

const SEEDS = [42, 1, 2, 3, 4, 5];

console.log('| hosts | seed | Ferry to convergence: score, moves | reference: score, moves | Ferry at the reference’s budget: score, moves | ≤ reference in score with no more moves |');
console.log('|---|---|---|---|---|---|');
for (const hosts of [10, 100]) {
  for (const seed of SEEDS) {
    const state = new PlanningState(generateCluster({ hosts, perHost: [20, 20], workloads: 20 * hosts, seed }));
    const ferry = planRebalance(state, { maxMoves: Number.POSITIVE_INFINITY, timeBudgetMs: 120_000 });
    const ref = referenceSearch(state);
    const budgeted = planRebalance(state, { maxMoves: ref.moves, timeBudgetMs: 120_000 });
    const ok = (score: number, moves: number) => (score <= ref.scoreAfter && moves <= ref.moves ? 'yes' : 'no');
    console.log(
      `| ${hosts} | ${seed} | ${ferry.scoreAfter.toFixed(5)}, ${ferry.moves.length} (${ok(ferry.scoreAfter, ferry.moves.length)}) | ${ref.scoreAfter.toFixed(5)}, ${ref.moves} | ${budgeted.scoreAfter.toFixed(5)}, ${budgeted.moves.length} | ${ok(budgeted.scoreAfter, budgeted.moves.length)} |`,
    );
  }
}
