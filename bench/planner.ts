/**
 * Planner benchmark: seeded clusters of 100, 1,000 and 10,000 hosts (a realistic mix of container
 * sizes, some hosts overloaded, some nearly empty), a rebalance plan and the evacuation of a host
 * with ~300 workloads on each. Pure computation: no services needed.
 */
import { cpus, totalmem } from 'node:os';
import { PlanningState, generateCluster, planEvacuation, planRebalance } from '@ferry/core';

interface Case {
  label: string;
  hosts: number;
  perHost: [number, number];
}

const CASES: Case[] = [
  { label: '100 hosts', hosts: 100, perHost: [20, 300] },
  { label: '1,000 hosts, 20,000 workloads', hosts: 1000, perHost: [10, 30] },
  { label: '1,000 hosts', hosts: 1000, perHost: [20, 300] },
  { label: '10,000 hosts', hosts: 10_000, perHost: [20, 300] },
];

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

export function runPlannerBenchmark(): void {
  const rows: string[][] = [];
  let peakRss = 0;
  const sample = () => (peakRss = Math.max(peakRss, process.memoryUsage().rss));
  for (const c of CASES) {
    const t0 = process.hrtime.bigint();
    const cluster = generateCluster({ hosts: c.hosts, perHost: c.perHost, seed: 42 });
    const generated = ms(t0);
    const t1 = process.hrtime.bigint();
    const state = new PlanningState(cluster);
    const indexed = ms(t1);
    sample();
    const t2 = process.hrtime.bigint();
    const rebalance = planRebalance(state, { maxMoves: 50 });
    const rebalanceMs = ms(t2);
    sample();
    // the host whose workload count is closest to 300
    const counts = state.usage.residents.map((r) => r.size);
    let victim = 0;
    counts.forEach((n, i) => {
      if (Math.abs(n - 300) < Math.abs(counts[victim]! - 300)) victim = i;
    });
    const t3 = process.hrtime.bigint();
    const evacuation = planEvacuation(state, [cluster.hosts[victim]!.id], { keepHaCapacity: true });
    const evacuationMs = ms(t3);
    sample();
    rows.push([
      c.label,
      cluster.workloads.length.toLocaleString('en'),
      `${generated.toFixed(0)} / ${indexed.toFixed(0)}`,
      rebalanceMs.toFixed(0),
      String(rebalance.moves.length),
      `${rebalance.scoreBefore.toFixed(3)} → ${rebalance.scoreAfter.toFixed(3)}`,
      `${counts[victim]} workloads: ${evacuationMs.toFixed(1)} ms, ${evacuation.ok ? `${evacuation.moves.length} moves` : `refused (${evacuation.reason})`}`,
      `${(peakRss / 2 ** 20).toFixed(0)}`,
    ]);
    console.error(`${c.label}: rebalance ${rebalanceMs.toFixed(0)} ms, evacuation ${evacuationMs.toFixed(1)} ms`);
  }
  const header = ['cluster', 'workloads', 'generate / index (ms)', 'rebalance plan (ms)', 'moves', 'score before → after', 'evacuate one host', 'peak RSS (MiB)'];
  console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; seed 42; rebalance budget 50 moves`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}
