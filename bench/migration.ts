/**
 * Live migration benchmark on a two-host lab: for each memory size and dirty rate, Ferry's live
 * migration (the strategy it picks here: post-copy), plain stop-and-copy (CRIU dump, rsync,
 * restore: Ferry's stop-and-copy strategy), the page server, plain runc + CRIU post-copy in place
 * (no copy, no orchestration: the floor of the freeze, bench/helpers/plain-criu.ts) and the raw
 * copy floor (the same bytes over one plain TCP connection on the same path), side by side.
 * `BENCH_REPEATS` runs per row (default 10) for post-copy and the plain floor,
 * `BENCH_SLOW_REPEATS` (default 3) for stop-and-copy and the page server; p50 and p99 where the
 * runs vary.
 *
 * Freeze is measured by the workload itself (largest gap between its 10 ms ticks) and by a TCP
 * client holding one connection through the move (longest wait for a reply).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { Lab, LocalCluster, repoRoot } from '@ferry/deploy';
import { createLogger } from '@ferry/runtime';
import { measuredFrom, predictionError } from '@ferry/core';
import { plainCriuRun } from './helpers/plain-criu.ts';
import type { MeasuredMigration, MigrationRecord, MigrationStrategy, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';

const SIZES_MIB = (process.env.BENCH_SIZES ?? '64,256,1024').split(',').map(Number);
const DIRTY_MIBPS = (process.env.BENCH_DIRTY ?? '4,64').split(',').map(Number);
const REPEATS = Number(process.env.BENCH_REPEATS ?? 10);
const SLOW_REPEATS = Number(process.env.BENCH_SLOW_REPEATS ?? 3);
const METHODS = (process.env.BENCH_METHODS ?? 'lazy,stop-and-copy,page-server,plain').split(',') as Array<MigrationStrategy | 'plain'>;
/** how many runs of a method per row: the freeze targets are post-copy's, measured against the plain floor */
const repeatsOf = (method: MigrationStrategy | 'plain') => (method === 'lazy' || method === 'plain' ? REPEATS : SLOW_REPEATS);
const NETWORK = { name: 'prod', subnet: '10.77.0.0/24', bridge: 'fbr-prod' };

interface Run {
  method: MigrationStrategy | 'plain';
  memMiB: number;
  dirty: number;
  workloadFreezeMs: number;
  clientFreezeMs: number;
  agentFreezeMs: number | null;
  dumpMs: number;
  transferMs: number;
  restoreMs: number;
  totalMs: number;
  linkBytes: number;
  breakdown: NonNullable<MigrationRecord['freeze']['breakdown']>;
  criu: MigrationRecord['freeze']['criu'];
  /** where the total went, step by step (totalSteps) */
  total: TotalStep[];
}

interface TotalStep {
  step: string;
  ms: number;
}

/**
 * Where a migration's total time (createdAt → finishedAt) went, from its record: the wait for the
 * job to start, every phase (the cleanup's own steps where the agents reported them), and what
 * lay between the phases (the scheduler's writes, events, the next request). Sums to the total.
 */
export function totalSteps(m: MigrationRecord): TotalStep[] {
  const steps: TotalStep[] = [];
  const timeline = [...m.timeline].sort((a, b) => a.startedAt - b.startedAt);
  let at = m.createdAt;
  let between = 0;
  for (const [i, e] of timeline.entries()) {
    if (i === 0) steps.push({ step: 'queued: the API → the job started', ms: e.startedAt - at });
    else between += Math.max(0, e.startedAt - at);
    const end = e.endedAt ?? e.startedAt;
    const inner = e.steps ?? [];
    for (const s of inner) steps.push({ step: `${e.phase}: ${s.step}`, ms: s.ms });
    const rest = end - e.startedAt - inner.reduce((sum, s) => sum + s.ms, 0);
    steps.push({ step: inner.length > 0 ? `${e.phase}: the rest` : e.phase, ms: Math.max(0, rest) });
    at = Math.max(at, end);
  }
  steps.push({ step: 'between the phases (scheduler)', ms: between });
  if (m.finishedAt !== null) steps.push({ step: 'after the last phase', ms: Math.max(0, m.finishedAt - at) });
  return steps;
}

/** The machine's CPU time counters (/proc/stat: all CPUs), busy and idle (idle + iowait). */
function cpuTimes(): { busy: number; idle: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: fields.reduce((a, b) => a + b, 0) - idle, idle };
}

/** The share of the machine's CPU time that was busy between two readings. */
const cpuBusy = (a: { busy: number; idle: number }, b: { busy: number; idle: number }) => {
  const busy = b.busy - a.busy;
  const total = busy + (b.idle - a.idle);
  return total > 0 ? busy / total : 0;
};

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
/** The nearest-rank percentile (p99 of 10 runs is their largest). */
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
};

export async function runMigrationBenchmark(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the migration benchmark builds a lab of network namespaces: run it as root');
  const stateDir = mkdtempSync(join(tmpdir(), 'ferry-bench-'));
  const log = createLogger('bench').child({}, { level: 'warn' });
  const lab = await Lab.create({ stateDir, hostIds: ['h1', 'h2'], networks: [NETWORK], reportIntervalMs: 500, log });
  const cluster = new LocalCluster({ stateDir, lab, log });
  const runs: Run[] = [];
  const floors = new Map<number, number[]>();
  /** each completed run as measured, with what was predicted when it was asked for */
  const measurements: MeasuredMigration[] = [];
  try {
    await cluster.start();
    cluster.startAgent('h1');
    cluster.startAgent('h2');
    await cluster.waitForHostsUp(['h1', 'h2'], 30_000);
    const api = async <T>(method: string, path: string, body?: unknown) => cluster.request<T>(method, path, body);
    const talk = async (host: string, address: string, line: string) => (await lab.exec(host, 'busybox', ['nc', '-w', '5', address, '7000'], { input: `${line}\nquit\n` })).stdout.trim();
    const linkRx = (host: string) => Number(readFileSync(`/sys/class/net/fl${lab.id}h${lab.host(host).index}m/statistics/rx_bytes`, 'utf8'));
    const until = async <T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 300_000): Promise<T> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = await probe().catch(() => null);
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
      }
    };

    let n = 0;
    for (const memMiB of SIZES_MIB) {
      for (const dirty of DIRTY_MIBPS) {
        for (let repeat = 0; repeat < Math.max(...METHODS.map(repeatsOf)); repeat++) {
          for (const method of METHODS) {
            if (repeat >= repeatsOf(method)) continue;
            if (method === 'plain') {
              const plain = await plainCriuRun(memMiB, dirty, { pause: true });
              runs.push({
                method,
                memMiB,
                dirty,
                workloadFreezeMs: plain.workloadFreezeMs,
                clientFreezeMs: Number.NaN,
                agentFreezeMs: null,
                dumpMs: plain.checkpointMs,
                transferMs: 0,
                restoreMs: plain.lazyDaemonMs + plain.restoreMs,
                totalMs: plain.totalMs,
                linkBytes: 0,
                breakdown: [],
                criu: undefined,
                total: [],
              });
              console.error(`plain runc+CRIU ${String(memMiB).padStart(5)} MiB  freeze ${plain.workloadFreezeMs.toFixed(0)} ms  total ${plain.totalMs.toFixed(0)} ms`);
              continue;
            }
            n++;
            const id = `b${n}`;
            const address = `10.77.0.${100 + (n % 100)}`;
            const spec: WorkloadSpecInput = {
              id,
              template: 'busybox',
              command: ['/usr/bin/ferry-workload', '--mem', String(memMiB), '--dirty', String(dirty), '--port', '7000'],
              resources: { vcpus: 1, memoryMiB: memMiB + 512, diskMiB: 64 },
              networks: [{ network: NETWORK.name, address }],
              pool: 'local',
            };
            await api('POST', '/v1/workloads', spec);
            const placed = await until(`${id} running`, async () => {
              const w = await api<WorkloadView>('GET', `/v1/workloads/${id}`);
              return w.phase === 'running' && w.observed?.state === 'running' ? w : null;
            });
            const source = placed.hostId!;
            const destination = source === 'h1' ? 'h2' : 'h1';
            await until(`${id} answering`, async () => /^\d+$/.test(await talk(destination, address, 'get')));
            await sleep(1000); // dirtying at its steady rate
            await talk(destination, address, 'reset-gaps');
            const [cmd, args] = lab.inHost(destination, process.execPath, [join(repoRoot, 'test', 'helpers', 'tcp-client.mjs'), address, '7000']);
            const client: ResultPromise = execa(cmd, args, { stdin: 'pipe', reject: false });
            await sleep(500);
            const rxBefore = linkRx(source);
            const cpuBefore = cpuTimes();
            const accepted = await api<{ migration: MigrationRecord }>('POST', `/v1/workloads/${id}/migrate`, { destination, strategy: method });
            const done = await until(`migration of ${id}`, async () => {
              const m = await api<MigrationRecord>('GET', `/v1/migrations/${accepted.migration.id}`);
              return ['completed', 'rolled-back', 'failed'].includes(m.state) ? m : null;
            });
            const linkBytes = linkRx(source) - rxBefore;
            const cpu = cpuBusy(cpuBefore, cpuTimes());
            await sleep(300);
            client.stdin!.end();
            const summary = JSON.parse(
              String((await client).stdout)
                .trim()
                .split('\n')
                .pop() ?? '{}',
            ) as { ok?: boolean; maxGapMs?: number; error?: string };
            const stats = JSON.parse(await talk(source, address, 'stats')) as { maxGapUs: number };
            const verify = JSON.parse(await talk(source, address, 'verify')) as { ok: boolean };
            if (done.state !== 'completed' || !verify.ok || !summary.ok) {
              throw new Error(`${method} ${memMiB} MiB: ${done.state} ${JSON.stringify(done.error)} verify=${verify.ok} client=${summary.error}`);
            }
            const phase = (name: string) => done.timeline.filter((e) => e.phase === name).reduce((s, e) => s + (e.ms ?? 0), 0);
            runs.push({
              method,
              memMiB,
              dirty,
              workloadFreezeMs: stats.maxGapUs / 1000,
              clientFreezeMs: summary.maxGapMs ?? 0,
              agentFreezeMs: done.freeze.agentMs,
              dumpMs: phase('freeze'),
              transferMs: phase('transfer'),
              restoreMs: phase('restore'),
              totalMs: (done.finishedAt ?? Date.now()) - done.createdAt,
              linkBytes,
              breakdown: done.freeze.breakdown ?? [],
              criu: done.freeze.criu,
              total: totalSteps(done),
            });
            const measurement = measuredFrom(done);
            if (measurement) measurements.push(measurement);
            const last = runs[runs.length - 1]!;
            console.error(
              `${method.padEnd(14)} ${String(memMiB).padStart(5)} MiB @${String(dirty).padStart(3)} MiB/s  freeze ${last.workloadFreezeMs.toFixed(0)} ms (client ${last.clientFreezeMs} ms)  total ${last.totalMs} ms  ${(linkBytes / 2 ** 20).toFixed(0)} MiB`,
            );
            console.error(`    ${last.total.map((t) => `${t.step} ${Math.round(t.ms)}`).join(' | ')}`);
            // what else ran: the machine's two cores, busy over the whole migration (everything: the lab, and whatever runs beside it)
            console.error(`    machine: CPU ${(cpu * 100).toFixed(0)} % busy over the migration, load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
            const cleanupNote = done.timeline.find((e) => e.phase === 'cleanup')?.note;
            if (cleanupNote) console.error(`    cleanup: ${cleanupNote}`);
            await api('DELETE', `/v1/workloads/${id}`);
            await until(`${id} destroyed`, async () => {
              const res = await fetch(`${cluster.apiUrl}/v1/workloads/${id}`, { headers: { authorization: `Bearer ${cluster.token}` } });
              return res.status === 404;
            });
            // the floor: the same bytes as this run put on the link, over one plain TCP connection
            if (method === 'lazy') {
              const port = 19_000 + (n % 1000);
              const to = lab.host(destination).address;
              const [rc, ra] = lab.inHost(destination, process.execPath, [join(repoRoot, 'bench', 'helpers', 'floor.mjs'), 'recv', to, String(port), String(linkBytes)]);
              const receiver = execa(rc, ra, { reject: false });
              await new Promise<void>((resolve) => receiver.stdout!.once('data', () => resolve()));
              const [sc, sa] = lab.inHost(source, process.execPath, [join(repoRoot, 'bench', 'helpers', 'floor.mjs'), 'send', to, String(port), String(linkBytes)]);
              const sent = await execa(sc, sa, { reject: false, timeout: 120_000 });
              await receiver;
              floors.set(memMiB * 1000 + dirty, [...(floors.get(memMiB * 1000 + dirty) ?? []), Number(sent.stdout.trim())]);
            }
          }
        }
      }
    }
  } finally {
    await cluster.stop().catch(() => undefined);
    await lab.destroy().catch((err: unknown) => console.error(`lab teardown: ${(err as Error).message}`));
    rmSync(stateDir, { recursive: true, force: true });
  }
  printTable(runs, floors);
  printBreakdown(runs);
  printTotalBreakdown(runs);
  printPredictionError(measurements);
}

/**
 * How far the predictions were from the measurements: over every run, and over the runs made once
 * three of the same kind had been measured (what the predictor learned) against those made on the
 * cost model alone.
 */
function printPredictionError(measured: MeasuredMigration[]): void {
  const pct = (e: { p50: number; p90: number } | null) => (e ? `${(e.p50 * 100).toFixed(0)} % / ${(e.p90 * 100).toFixed(0)} %` : '—');
  const groups: Array<[string, MeasuredMigration[]]> = [
    ['every run', measured],
    ['on the cost model alone', measured.filter((m) => m.predicted?.basis === 'model')],
    ['learned from earlier runs', measured.filter((m) => m.predicted && m.predicted.basis !== 'model')],
  ];
  console.log('\nprediction error, |predicted − measured| / measured, p50 / p90:');
  console.log('| runs | n | freeze | total |');
  console.log('|---|---|---|---|');
  for (const [label, group] of groups) {
    const e = predictionError(group);
    console.log(`| ${label} | ${e.samples} | ${pct(e.freeze)} | ${pct(e.seconds)} |`);
  }
}

/** Where the freeze goes, step by step: the median of each step over the runs of a method and size. */
function printBreakdown(runs: Run[]): void {
  for (const method of METHODS) {
    for (const memMiB of SIZES_MIB) {
      const mine = runs.filter((r) => r.method === method && r.memMiB === memMiB && r.breakdown.length > 0);
      if (mine.length === 0) continue;
      const keys = [...new Set(mine.flatMap((r) => r.breakdown.map((e) => `${e.phase}|${e.side}|${e.step}`)))];
      const criu = (pick: (c: NonNullable<Run['criu']>) => number | null) => {
        const values = mine.map((r) => (r.criu ? pick(r.criu) : null)).filter((v): v is number => v !== null);
        return values.length > 0 ? `${median(values).toFixed(0)} ms` : 'not written';
      };
      console.log(`\nfreeze breakdown, ${method}, ${memMiB} MiB (median of ${mine.length} runs; agents' freeze ${median(mine.map((r) => r.agentFreezeMs ?? 0)).toFixed(0)} ms):`);
      console.log(`CRIU's own count: dump, tasks frozen ${criu((c) => c.dumpFrozenMs)}; restore ${criu((c) => c.restoreMs)}`);
      console.log('| phase | side | step | ms |');
      console.log('|---|---|---|---|');
      for (const key of keys) {
        const [phase, side, step] = key.split('|');
        const values = mine.map((r) => r.breakdown.filter((e) => `${e.phase}|${e.side}|${e.step}` === key).reduce((sum, e) => sum + e.ms, 0));
        console.log(`| ${phase} | ${side} | ${step} | ${median(values).toFixed(0)} |`);
      }
    }
  }
}

/** Where the total time goes, step by step: the median of each step over the runs of a method and size. */
function printTotalBreakdown(runs: Run[]): void {
  for (const method of METHODS) {
    const sizes = SIZES_MIB.filter((memMiB) => runs.some((r) => r.method === method && r.memMiB === memMiB && r.total.length > 0));
    if (sizes.length === 0) continue;
    const keys = [...new Set(runs.filter((r) => r.method === method).flatMap((r) => r.total.map((t) => t.step)))];
    console.log(`\ntotal time breakdown, ${method} (median of each step over the runs; ms):`);
    console.log(`| step | ${sizes.map((s) => `${s} MiB`).join(' | ')} |`);
    console.log(`|---|${sizes.map(() => '---').join('|')}|`);
    const of = (memMiB: number) => runs.filter((r) => r.method === method && r.memMiB === memMiB && r.total.length > 0);
    for (const key of keys) {
      console.log(`| ${key} | ${sizes.map((s) => median(of(s).map((r) => r.total.filter((t) => t.step === key).reduce((sum, t) => sum + t.ms, 0))).toFixed(0)).join(' | ')} |`);
    }
    console.log(`| **total** (its own median) | ${sizes.map((s) => median(of(s).map((r) => r.totalMs)).toFixed(0)).join(' | ')} |`);
  }
}

const LABELS: Record<MigrationStrategy | 'plain', string> = {
  lazy: 'Ferry live (post-copy)',
  'stop-and-copy': 'stop-and-copy (dump, rsync, restore)',
  'page-server': 'page server',
  precopy: 'pre-copy',
  cold: 'cold',
  plain: 'plain runc + CRIU post-copy, in place (floor of the freeze)',
};

function printTable(runs: Run[], floors: Map<number, number[]>): void {
  const rows: string[][] = [];
  const p50p99 = (values: number[]) => {
    const real = values.filter((v) => Number.isFinite(v));
    if (real.length === 0) return '—';
    return real.length < 5 ? `${median(real).toFixed(0)} (median)` : `${percentile(real, 50).toFixed(0)} / ${percentile(real, 99).toFixed(0)}`;
  };
  for (const memMiB of SIZES_MIB) {
    for (const dirty of DIRTY_MIBPS) {
      const floor = floors.get(memMiB * 1000 + dirty) ?? [];
      const floorMs = floor.length > 0 ? median(floor) : null;
      for (const method of METHODS) {
        const mine = runs.filter((r) => r.method === method && r.memMiB === memMiB && r.dirty === dirty);
        if (mine.length === 0) continue;
        const m = (pick: (r: Run) => number) => median(mine.map(pick));
        rows.push([
          `${memMiB} MiB`,
          `${dirty} MiB/s`,
          LABELS[method],
          String(mine.length),
          p50p99(mine.map((r) => r.workloadFreezeMs)),
          p50p99(mine.map((r) => r.clientFreezeMs)),
          `${m((r) => r.dumpMs).toFixed(0)} / ${m((r) => r.transferMs).toFixed(0)} / ${m((r) => r.restoreMs).toFixed(0)}`,
          p50p99(mine.map((r) => r.totalMs)),
          method === 'plain' ? '' : (m((r) => r.linkBytes) / 2 ** 20).toFixed(0),
          floorMs === null ? '' : (m((r) => r.totalMs) / floorMs).toFixed(1),
        ]);
      }
      if (floorMs !== null) rows.push([`${memMiB} MiB`, `${dirty} MiB/s`, 'raw copy floor (one TCP stream)', String(floor.length), '', '', '', floorMs.toFixed(0), '', '1.0']);
    }
  }
  const header = [
    'memory',
    'dirtying',
    'method',
    'runs',
    'freeze, workload p50 / p99 (ms)',
    'freeze, TCP client p50 / p99 (ms)',
    'dump / transfer / restore, median (ms)',
    'total p50 / p99 (ms)',
    'on the link (MiB)',
    '× floor (median total)',
  ];
  console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}
