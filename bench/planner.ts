/**
 * Planner benchmark (issue 15, part 4): seeded clusters of 10, 100, 1,000 and 10,000 hosts with
 * 20 containers per host, 20 × hosts in all (the generator's size mix; 10 % of hosts packed to
 * ~90 %, 10 % nearly empty), each rebalanced to convergence, several times: final score, moves, GiB
 * moved, time (p50 / p99 over the runs) and peak RSS. At 10
 * and 100 hosts the reference — a full greedy search over every single move, as Ganeti hbal does
 * (bench/reference-search.ts) — runs too, and Ferry again with the reference's move count as its
 * budget, and without its polish. Each case runs in a process of its own (bench/planner-case.ts) so its peak RSS is its own.
 * Pure computation: no services needed.
 */
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { CaseResult, Timing } from './planner-case.ts';

const HOSTS = [10, 100, 1000, 10_000];
/** Targets: converged within these (issue 15). */
const TARGET_MS: Record<number, number> = { 1000: 2000, 10_000: 20_000 };

const n = (x: number) => x.toLocaleString('en');

function runInChild(hosts: number): CaseResult {
  const file = fileURLToPath(new URL('./planner-case.ts', import.meta.url));
  const child = spawnSync(process.execPath, [...process.execArgv, file, String(hosts)], { encoding: 'utf8', maxBuffer: 16 * 2 ** 20 });
  if (child.status !== 0) throw new Error(`planner case ${hosts} failed: ${child.stderr}`);
  return JSON.parse(child.stdout.trim().split('\n').at(-1)!) as CaseResult;
}

const ms = (t: Timing) => `${t.p50.toFixed(0)} / ${t.p99.toFixed(0)} (${t.runs.length} runs; CPU ${t.cpuP50.toFixed(0)})`;

export function runPlannerBenchmark(): void {
  const results = HOSTS.map((hosts) => {
    const r = runInChild(hosts);
    console.error(`${n(hosts)} hosts: ${r.ferry.moves} moves, p50 ${r.ferry.time.p50.toFixed(0)} ms${r.reference ? `; reference ${r.reference.moves} moves in ${r.reference.ms.toFixed(0)} ms` : ''}`);
    return r;
  });
  console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; seed 42; 20 containers per host (20 × hosts in all)`);
  console.log();
  const header = ['cluster', 'search', 'score before → after', 'moves', 'GiB moved', 'time p50 / p99 (ms)', 'peak RSS (MiB)', 'target'];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const r of results) {
    const cluster = `${n(r.hosts)} hosts, ${n(r.workloads)} workloads`;
    const f = r.ferry;
    const target = TARGET_MS[r.hosts];
    const ref = r.reference;
    const versus = (x: { scoreAfter: number; moves: number }) =>
      ref ? `score ≤ reference: ${x.scoreAfter <= ref.scoreAfter ? 'yes' : '**no**'}; moves ≤ reference: ${x.moves <= ref.moves ? 'yes' : '**no**'}` : '';
    const verdict = target
      ? `converged ≤ ${n(target)} ms: ${f.stopped.startsWith('converged') && f.time.p99 <= target ? 'met' : f.stopped.startsWith('converged') && f.time.p50 <= target ? 'met at p50, not at p99' : '**missed**'}`
      : versus(f);
    console.log(
      `| ${cluster} | Ferry (default, to convergence${f.swaps > 0 ? `, ${f.swaps} swaps` : ''}) | ${f.scoreBefore.toFixed(4)} → ${f.scoreAfter.toFixed(5)} | ${n(f.moves)} | ${n(Math.round(f.gib))} | ${ms(f.time)} | ${f.peakRssMiB.toFixed(0)} | ${verdict} |`,
    );
    if (ref) {
      console.log(
        `| | reference: full greedy search | ${ref.scoreBefore.toFixed(4)} → ${ref.scoreAfter.toFixed(5)} | ${n(ref.moves)} | ${n(Math.round(ref.gib))} | ${ref.ms.toFixed(0)} (1 run) | ${ref.peakRssMiB.toFixed(0)} | |`,
      );
      for (const [name, x] of [
        ['Ferry without the polish', r.ferryNoPolish!],
        [`Ferry, budget = reference's moves (${ref.moves})`, r.ferryAtReferenceBudget!],
      ] as const)
        console.log(`| | ${name} | ${x.scoreBefore.toFixed(4)} → ${x.scoreAfter.toFixed(5)} | ${n(x.moves)} | ${n(Math.round(x.gib))} | ${ms(x.time)} | | ${versus(x)} |`);
    }
  }
  console.log();
  console.log('| cluster | generate / index (ms) | evacuate the fullest host |');
  console.log('|---|---|---|');
  for (const r of results)
    console.log(
      `| ${n(r.hosts)} hosts | ${r.generateMs.toFixed(0)} / ${r.indexMs.toFixed(0)} | ${r.evacuation.workloads} workloads: ${r.evacuation.ms.toFixed(1)} ms, ${r.evacuation.ok ? `${r.evacuation.moves} moves` : 'refused'} |`,
    );
}
