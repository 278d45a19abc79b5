/**
 * Ferry benchmarks, side by side in one run. `npm run bench` prints a table; copy it with the
 * machine description into bench/RESULTS.md.
 *
 * Scheduler intake: what one scheduler process spends per capacity report (validate + liveness
 * table), i.e. how many hosts reporting once a second one core can follow.
 */
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import { parseCpuInfo } from '@ferry/agent';
import { MAX_CAPACITY_REPORT_BYTES, type CapacityReport } from '@ferry/protocol';
import { HostTable, parseCapacityMessage } from '@ferry/scheduler';
import { sampleReport } from '../test/fixtures/capacity.ts';

interface Row {
  name: string;
  ops: number;
  nsPerOp: number;
}

function measure(name: string, minMs: number, op: (i: number) => void): Row {
  for (let i = 0; i < 2000; i++) op(i); // warm-up
  let ops = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0n;
  while (elapsed < BigInt(minMs) * 1_000_000n) {
    for (let i = 0; i < 1000; i++) op(ops++);
    elapsed = process.hrtime.bigint() - start;
  }
  const nsPerOp = Number(elapsed) / ops;
  return { name, ops: Math.round(1e9 / nsPerOp), nsPerOp };
}

const cpu = parseCpuInfo(readFileSync('/proc/cpuinfo', 'utf8'));
const CONTAINERS_PER_HOST = 20;
const report = (hostId: string, seq: number): CapacityReport => sampleReport(hostId, { seq, sentAt: Date.now(), cpu, containerCount: CONTAINERS_PER_HOST });

const encoder = new TextEncoder();
const HOSTS = 10_000;
const bodies = Array.from({ length: HOSTS }, (_, i) => encoder.encode(JSON.stringify(report(`h${i}`, i))));
const subjectsFor = Array.from({ length: HOSTS }, (_, i) => `ferry.host.h${i}.capacity`);
const invalid = encoder.encode(JSON.stringify({ ...report('h0', 0), memory: { totalBytes: 'lots' } }));
const oversized = new Uint8Array(MAX_CAPACITY_REPORT_BYTES + 1);

const table = new HostTable({ suspectAfterMs: 3000, downAfterMs: 10_000 });
const parsed = bodies.map((body, i) => {
  const result = parseCapacityMessage(subjectsFor[i]!, body);
  if (!result.ok) throw new Error(result.detail);
  return result.report;
});

const rows: Row[] = [
  measure(`valid report (${bodies[0]!.byteLength} B, ${cpu.flags.length} CPU flags, ${CONTAINERS_PER_HOST} containers): decode + validate`, 1500, (i) => {
    parseCapacityMessage(subjectsFor[i % HOSTS]!, bodies[i % HOSTS]!);
  }),
  measure('schema-invalid report: decode + reject', 1500, () => {
    parseCapacityMessage('ferry.host.h0.capacity', invalid);
  }),
  measure(`oversized report (${oversized.byteLength} B): reject unread`, 1500, () => {
    parseCapacityMessage('ferry.host.h0.capacity', oversized);
  }),
  measure(`host table update, ${HOSTS} hosts`, 1500, (i) => {
    table.onReport(parsed[i % HOSTS]!, 1_000_000 + i);
  }),
  measure(`liveness sweep over ${HOSTS} hosts`, 1500, (i) => {
    table.tick(1_000_000 + i);
  }),
];

const pad = (s: string, n: number) => s.padEnd(n);
console.log(`machine: ${cpus()[0]?.model} x${cpus().length}, node ${process.version}`);
console.log(`| ${pad('benchmark', 72)} | ${pad('ops/s', 10)} | ${pad('µs/op', 8)} |`);
console.log(`|${'-'.repeat(74)}|${'-'.repeat(12)}|${'-'.repeat(10)}|`);
for (const row of rows) {
  console.log(`| ${pad(row.name, 72)} | ${pad(row.ops.toLocaleString('en'), 10)} | ${pad((row.nsPerOp / 1000).toFixed(2), 8)} |`);
}
