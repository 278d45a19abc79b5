/**
 * Density benchmark, first part (issue 17, parts 3–4): N idle Debian VPSs created and started on
 * one lab host whose local pool is a loop-mounted btrfs image with quota groups (each root a
 * snapshot of the template, limited to its disk size). Through the whole stack: API → scheduler →
 * agent → btrfs snapshot + runc. Prints the wall time from the first request until all run, the
 * agent's own create time per container (snapshot + limit: p50/p99), the rate at which starts
 * completed at the agent, then, idle, the host memory taken per container and the agent's CPU.
 * The time the agent takes to build one capacity report (reconcile, cgroup reads, disk usage,
 * pools) is read from its own histogram, `ferry_agent_report_build_seconds`, scraped from its
 * metrics endpoint at each phase's edges: p50/p99 per phase, interpolated inside the buckets as
 * Prometheus' histogram_quantile does, and the exact mean (sum / count). Last, a client on a
 * second lab host (no agent: only a network namespace on the same segment) sends HTTP GETs to
 * the 300 nginx for BENCH_DENSITY_LOAD_S seconds (0: skipped).
 * Nothing is asserted: it only measures. Needs root; run under the lab lock.
 *
 *   BENCH_DENSITY_COUNT     containers (default 300)
 *   BENCH_DENSITY_TEMPLATE  template (default debian-12; its init command)
 *   BENCH_DENSITY_IDLE_S    the idle window measured once all run (default 20)
 *   BENCH_DENSITY_LOAD_S    the HTTP load window (default 10)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Lab, LocalCluster } from '@ferry/deploy';
import { createLogger } from '@ferry/runtime';
import type { WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { histogramQuantile, parseHistogram, type ScrapedHistogram } from './helpers/prom-histogram.ts';

/** a /22: room for 1000 addresses on one segment */
const NETWORK = { name: 'dense', subnet: '10.78.0.0/22', bridge: 'fbr-dense' };

const address = (i: number) => `10.78.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`;

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

const REPORT_BUILD = 'ferry_agent_report_build_seconds';

const scrapeReportBuild = async (metricsUrl: string) => parseHistogram(await (await fetch(metricsUrl, { signal: AbortSignal.timeout(10_000) })).text(), REPORT_BUILD);

function buildSummary(from: ScrapedHistogram, to: ScrapedHistogram): string {
  const n = to.count - from.count;
  const mean = n > 0 ? ((to.sum - from.sum) / n) * 1000 : NaN;
  const q = (p: number) => {
    const r = histogramQuantile(from, to, p);
    return r === null ? 'n/a' : `${r.beyond ? '> ' : ''}${(r.value * 1000).toFixed(0)} ms`;
  };
  return `p50 ${q(0.5)}, p99 ${q(0.99)}, mean ${mean.toFixed(0)} ms (${n} reports)`;
}

/**
 * Run inside the client's lab host: `workers` keep-alive loops of GET / over the addresses, round
 * robin, for the given seconds; prints the 200s and the rest as JSON.
 */
const LOAD_CLIENT = `
const http = require('node:http');
const [addresses, seconds, workers] = JSON.parse(process.argv[1]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const until = Date.now() + seconds * 1000;
let ok = 0, other = 0, next = 0;
const get = (host) => new Promise((resolve) => {
  const req = http.get({ host, port: 80, path: '/', agent, timeout: 3000 }, (res) => {
    res.resume();
    res.on('end', () => { res.statusCode === 200 ? ok++ : other++; resolve(); });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => { other++; resolve(); });
});
const worker = async () => { while (Date.now() < until) await get(addresses[next++ % addresses.length]); };
Promise.all(Array.from({ length: workers }, worker)).then(() => { console.log(JSON.stringify({ ok, other })); process.exit(0); });
`;

const memAvailable = () => Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1]) * 1024;

/** utime + stime of a process, in clock ticks (100 per second here). */
const cpuTicks = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
};

export async function runDensityBenchmark(): Promise<void> {
  const count = Number(process.env.BENCH_DENSITY_COUNT ?? 300);
  const template = process.env.BENCH_DENSITY_TEMPLATE ?? 'debian-12';
  const idleS = Number(process.env.BENCH_DENSITY_IDLE_S ?? 20);
  const loadS = Number(process.env.BENCH_DENSITY_LOAD_S ?? 10);
  const manifest = JSON.parse(readFileSync(`/opt/ferry/templates/${template}/template.json`, 'utf8')) as { init?: { command: string[] } };
  const stateDir = mkdtempSync(join(tmpdir(), 'ferry-bench-density-'));
  const log = createLogger('bench-density').child({}, { level: 'warn' });
  const lab = await Lab.create({ stateDir, hostIds: ['h1', 'client'], networks: [NETWORK], reportIntervalMs: 1000, log, quotaPools: true });
  const cluster = new LocalCluster({ stateDir, lab, log });
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${cluster.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${cluster.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as unknown };
  };
  try {
    await cluster.start();
    const agent = cluster.startAgent('h1');
    await cluster.waitForHostsUp(['h1'], 30_000);
    const memBefore = memAvailable();
    const metricsUrl = `http://${lab.host('h1').address}:9465/metrics`;
    const beforeCreate = await scrapeReportBuild(metricsUrl);
    console.log(`${count} × ${template} on one host (${cpus().length} vCPUs, shared with other sessions: noisy), pool: loop-mounted btrfs with quota groups`);

    const started = performance.now();
    const ids = Array.from({ length: count }, (_, i) => `d${i}`);
    // 16 requests in flight: the API is not what is measured
    for (let i = 0; i < ids.length; i += 16) {
      await Promise.all(
        ids.slice(i, i + 16).map(async (id, k) => {
          const spec: WorkloadSpecInput = {
            id,
            template,
            command: manifest.init?.command ?? ['/bin/sh'],
            resources: { vcpus: 0.01, memoryMiB: 32, diskMiB: 256 },
            networks: [{ network: NETWORK.name, address: address(i + k) }],
            pool: 'local',
          };
          const res = await api('POST', '/v1/workloads', spec);
          if (res.status !== 202) throw new Error(`creating ${id}: ${res.status} ${JSON.stringify(res.body)}`);
        }),
      );
    }
    const posted = performance.now() - started;

    let running = 0;
    let failed: WorkloadView[] = [];
    for (;;) {
      const page = (await api('GET', '/v1/workloads?limit=1000')).body as { workloads: WorkloadView[] };
      running = page.workloads.filter((w) => w.phase === 'running' && w.observed?.state === 'running').length;
      failed = page.workloads.filter((w) => w.phase === 'failed');
      if (running + failed.length >= count || performance.now() - started > 900_000) break;
      await sleep(500);
    }
    const allRunningMs = performance.now() - started;
    const allRunning = await scrapeReportBuild(metricsUrl);

    // the agent's own view: each create (snapshot + limit) and when each start finished
    const lines = readFileSync(join(stateDir, 'logs', 'agent-h1.log'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; time: string | number; ms?: number; mode?: string });
    const creates = lines.filter((l) => l.msg === 'container created');
    const createMs = creates.map((l) => l.ms ?? NaN).sort((a, b) => a - b);
    const startTimes = lines.filter((l) => l.msg === 'container started').map((l) => new Date(l.time).getTime());
    const firstCreate = Math.min(...creates.map((l) => new Date(l.time).getTime()));
    const lastStart = Math.max(...startTimes);

    await sleep(2_000);
    const idleTicks0 = cpuTicks(agent.pid);
    const idleStart = await scrapeReportBuild(metricsUrl);
    await sleep(idleS * 1000);
    const agentCpu = (cpuTicks(agent.pid) - idleTicks0) / idleS; // ticks/s = percent of one core
    const idleEnd = await scrapeReportBuild(metricsUrl);
    const memPer = (memBefore - memAvailable()) / Math.max(1, running);
    const page = (await api('GET', '/v1/workloads?limit=1000')).body as { workloads: WorkloadView[] };
    const workingSets = page.workloads.flatMap((w) => (w.observed?.usage ? [w.observed.usage.memoryBytes] : []));
    const disk = page.workloads.flatMap((w) => (w.observed?.usage?.diskBytes ? [w.observed.usage.diskBytes] : []));

    // HTTP load from the other lab host: 64 connections, one per worker, over the running VPSs
    let load: { ok: number; other: number } | null = null;
    let loadEnd = idleEnd;
    if (loadS > 0) {
      const addresses = ids.map((_, i) => address(i));
      const r = await lab.exec('client', process.execPath, ['-e', LOAD_CLIENT, JSON.stringify([addresses, loadS, 64])], { timeoutMs: (loadS + 30) * 1000 });
      load = r.exitCode === 0 ? (JSON.parse(r.stdout) as { ok: number; other: number }) : null;
      if (!load) console.error(`load client: ${r.exitCode} ${r.stderr}`);
      loadEnd = await scrapeReportBuild(metricsUrl);
    }

    const MiB = 1024 * 1024;
    console.log('| measure | value |');
    console.log('| --- | --- |');
    console.log(`| containers running / failed | ${running} / ${failed.length}${failed[0] ? ` (first: ${failed[0].error?.message})` : ''} |`);
    console.log(`| requests posted (16 in flight) | ${(posted / 1000).toFixed(1)} s |`);
    console.log(`| first request → all running (API view) | ${(allRunningMs / 1000).toFixed(1)} s |`);
    console.log(`| agent: first create → last start | ${((lastStart - firstCreate) / 1000).toFixed(1)} s (${(startTimes.length / ((lastStart - firstCreate) / 1000)).toFixed(1)} starts/s) |`);
    console.log(
      `| agent create (snapshot + limit), per container | p50 ${percentile(createMs, 50)} ms, p99 ${percentile(createMs, 99)} ms, mode ${[...new Set(creates.map((c) => c.mode))].join(',')} |`,
    );
    console.log(`| host memory per idle container (MemAvailable drop / N) | ${(memPer / MiB).toFixed(1)} MiB |`);
    console.log(`| working set per container (cgroup, mean) | ${(workingSets.reduce((a, b) => a + b, 0) / Math.max(1, workingSets.length) / MiB).toFixed(1)} MiB |`);
    console.log(`| disk charged per container (quota groups, mean: its own writes) | ${(disk.reduce((a, b) => a + b, 0) / Math.max(1, disk.length) / MiB).toFixed(1)} MiB |`);
    console.log(`| agent CPU, idle, ${count} containers, ${idleS} s | ${agentCpu.toFixed(1)} % of one core |`);
    console.log(`| capacity-report build, while creating (0 → ${count}) | ${buildSummary(beforeCreate, allRunning)} |`);
    console.log(`| capacity-report build, ${count} idle, ${idleS} s | ${buildSummary(idleStart, idleEnd)} |`);
    if (load) {
      console.log(`| HTTP GET / from another lab host, 64 connections, ${loadS} s, over ${count} nginx | ${Math.round((load.ok / loadS) * 60)} requests/min (${load.other} failed) |`);
      console.log(`| capacity-report build, under that load | ${buildSummary(idleEnd, loadEnd)} |`);
    }
  } finally {
    await cluster.stop().catch(() => undefined);
    await lab.destroy().catch((err: unknown) => console.error(`lab teardown: ${(err as Error).message}`));
    rmSync(stateDir, { recursive: true, force: true });
  }
}
