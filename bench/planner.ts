/**
 * Planner benchmark (issue 15, part 4): seeded clusters of 10, 100, 1,000 and 10,000 hosts with
 * 20 containers per host (the generator's size mix; 10 % of hosts packed to ~90 %, 10 % nearly
 * empty), each rebalanced to convergence: final score, moves, GiB moved, time and peak RSS. At 10
 * and 100 hosts the reference — a full greedy search over every single move, as Ganeti hbal does
 * (bench/reference-search.ts) — runs too, and Ferry again with the reference's move count as its
 * budget. Each case runs in a process of its own (bench/planner-case.ts) so its peak RSS is its own.
 * Pure computation: no services needed.
 */
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { CaseResult } from './planner-case.ts';

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

export function runPlannerBenchmark(): void {
  const results = HOSTS.map((hosts) => {
    const r = runInChild(hosts);
    console.error(`${n(hosts)} hosts: ${r.ferry.moves} moves in ${r.ferry.ms.toFixed(0)} ms${r.reference ? `; reference ${r.reference.moves} moves in ${r.reference.ms.toFixed(0)} ms` : ''}`);
    return r;
  });
  console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; seed 42; 20 containers per host`);
  console.log();
  const header = ['cluster', 'search', 'score before → after', 'moves', 'GiB moved', 'time (ms)', 'peak RSS (MiB)', 'target'];
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const r of results) {
    const cluster = `${n(r.hosts)} hosts, ${n(r.workloads)} workloads`;
    const f = r.ferry;
    const target = TARGET_MS[r.hosts];
    const ref = r.reference;
    const verdict = target
      ? `converged ≤ ${n(target)} ms: ${f.stopped.startsWith('converged') && f.ms <= target ? 'met' : 'missed'}`
      : ref
        ? `score ≤ reference: ${f.scoreAfter <= ref.scoreAfter ? 'yes' : 'no'}; moves ≤ reference: ${f.moves <= ref.moves ? 'yes' : 'no'}`
        : '';
    console.log(
      `| ${cluster} | Ferry (default, to convergence${f.swaps > 0 ? `, ${f.swaps} swaps` : ''}) | ${f.scoreBefore.toFixed(4)} → ${f.scoreAfter.toFixed(5)} | ${n(f.moves)} | ${n(Math.round(f.gib))} | ${f.ms.toFixed(0)} | ${f.peakRssMiB.toFixed(0)} | ${verdict} |`,
    );
    if (ref) {
      console.log(
        `| | reference: full greedy search | ${ref.scoreBefore.toFixed(4)} → ${ref.scoreAfter.toFixed(5)} | ${n(ref.moves)} | ${n(Math.round(ref.gib))} | ${ref.ms.toFixed(0)} | ${ref.peakRssMiB.toFixed(0)} | |`,
      );
      const b = r.ferryAtReferenceBudget!;
      console.log(
        `| | Ferry, budget = reference's moves (${ref.moves}) | ${f.scoreBefore.toFixed(4)} → ${b.scoreAfter.toFixed(5)} | ${n(b.moves)} | ${n(Math.round(b.gib))} | ${b.ms.toFixed(0)} | | score ≤ reference with no more moves: ${b.scoreAfter <= ref.scoreAfter && b.moves <= ref.moves ? 'yes' : 'no'} |`,
      );
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
