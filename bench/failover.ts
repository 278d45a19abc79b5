/**
 * Failover benchmark: seconds from a host's death to its HA workloads answering on their new
 * hosts, for 1, 10 and 50 workloads, under the default lease and a shorter one, in one run.
 *
 * Each case gets a fresh four-host lab: the workloads are created while only h1 runs (so they all
 * land there, unpinned), then h2–h4 join. h1 then dies the way the failover test kills a host —
 * agent SIGKILLed, its fence guard and every container process killed, its links cut — and a
 * watcher inside h2 asks every workload's address for its counter every 100 ms until each answers
 * from its new host. Reported: detection (death → the scheduler declaring h1 down), first and
 * last workload answering, and the failover job's own span (its start → last restart).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { z } from 'zod';
import { Lab, LocalCluster, repoRoot } from '@ferry/deploy';
import { createLogger } from '@ferry/runtime';
import type { FailoverRecord, HostHistoryEntry, HostView, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';

const Settings = z.object({
  BENCH_FAILOVER_COUNTS: z
    .string()
    .regex(/^\d+(,\d+)*$/)
    .default('1,10,50'),
  /** lease:down-after pairs in ms */
  BENCH_FAILOVER_PROFILES: z
    .string()
    .regex(/^\d+:\d+(,\d+:\d+)*$/)
    .default('10000:13000,5000:7000'),
});
const NETWORK = { name: 'prod', subnet: '10.77.0.0/24', bridge: 'fbr-prod' };
const HOSTS = ['h1', 'h2', 'h3', 'h4'];

/** A failure no waiting can fix: ends the run instead of timing out. */
class BenchFailure extends Error {}

interface Case {
  leaseMs: number;
  downAfterMs: number;
  workloads: number;
  detectionMs: number;
  firstMs: number;
  medianMs: number;
  lastMs: number;
  failoverSpanMs: number;
  answered: number;
}

export async function runFailoverBenchmark(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('the failover benchmark builds labs of network namespaces: run it as root');
  const settings = Settings.parse(process.env);
  const counts = settings.BENCH_FAILOVER_COUNTS.split(',').map(Number);
  const profiles = settings.BENCH_FAILOVER_PROFILES.split(',').map((p) => p.split(':').map(Number) as [number, number]);
  const cases: Case[] = [];
  for (const [leaseMs, downAfterMs] of profiles) {
    for (const workloads of counts) {
      const result = await oneFailover(leaseMs, downAfterMs, workloads);
      cases.push(result);
      console.error(
        `lease ${leaseMs / 1000} s / down ${downAfterMs / 1000} s, ${workloads} workload(s): detected ${(result.detectionMs / 1000).toFixed(1)} s, ` +
          `first ${(result.firstMs / 1000).toFixed(1)} s, last ${(result.lastMs / 1000).toFixed(1)} s (${result.answered}/${workloads} answered)`,
      );
    }
  }
  printTable(cases);
}

async function oneFailover(leaseMs: number, downAfterMs: number, count: number): Promise<Case> {
  const stateDir = mkdtempSync(join(tmpdir(), 'ferry-bench-failover-'));
  const log = createLogger('bench').child({}, { level: 'warn' });
  const lab = await Lab.create({ stateDir, hostIds: HOSTS, networks: [NETWORK], reportIntervalMs: 1000, log });
  const cluster = new LocalCluster({
    stateDir,
    lab,
    log,
    schedulerEnv: { FERRY_LEASE_MS: String(leaseMs), FERRY_DOWN_AFTER_MS: String(downAfterMs), FERRY_SUSPECT_AFTER_MS: String(Math.min(3000, leaseMs / 2)) },
  });
  try {
    await cluster.start();
    const api = <T>(method: string, path: string, body?: unknown) => cluster.request<T>(method, path, body);
    const until = async <T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 300_000): Promise<T> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = await probe().catch((err: unknown) => {
          if (err instanceof BenchFailure) throw err;
          return null; // not answering yet
        });
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(100);
      }
    };
    // only h1 at first: every workload lands there without being pinned to it
    cluster.startAgent('h1');
    await cluster.waitForHostsUp(['h1'], 30_000);
    const addresses = Array.from({ length: count }, (_, i) => `10.77.0.${100 + i}`);
    for (const [i, address] of addresses.entries()) {
      const spec: WorkloadSpecInput = {
        id: `w${i + 1}`,
        template: 'busybox',
        command: ['/usr/bin/ferry-workload', '--mem', '4', '--port', '7000'],
        resources: { vcpus: 0.1, memoryMiB: 64, diskMiB: 32 },
        networks: [{ network: NETWORK.name, address }],
        pool: 'shared',
        ha: { enabled: true, priority: 5 },
      };
      await api('POST', '/v1/workloads', spec);
    }
    await until(`${count} workloads running on h1`, async () => {
      const { workloads } = await api<{ workloads: WorkloadView[] }>('GET', '/v1/workloads');
      if (workloads.some((w) => w.phase === 'failed')) throw new BenchFailure(`a workload failed: ${JSON.stringify(workloads.find((w) => w.phase === 'failed')?.error)}`);
      return workloads.length === count && workloads.every((w) => w.phase === 'running' && w.hostId === 'h1' && w.observed?.state === 'running');
    });
    for (const h of HOSTS.slice(1)) cluster.startAgent(h);
    await cluster.waitForHostsUp(HOSTS, 30_000);
    // the survivors must have proven that they share the pool with h1 before it dies
    await until('the shared pool proven between h1 and the others', async () => {
      const { hosts } = await api<{ hosts: HostView[] }>('GET', '/v1/hosts');
      return hosts.filter((h) => h.id !== 'h1').every((h) => h.capacity.pools.find((p) => p.id === 'shared')?.probe?.sees.some((s) => s.hostId === 'h1'));
    });

    const [cmd, args] = lab.inHost('h2', process.execPath, [join(repoRoot, 'bench', 'helpers', 'answer-watch.mjs'), '7000', '180000', ...addresses]);
    const watcher = execa(cmd, args, { stdin: 'pipe', reject: false });
    await new Promise<void>((resolve) => watcher.stdout!.once('data', () => resolve()));
    const diedAt = Date.now();
    await cluster.supervisor.stop(cluster.agent('h1')!, 0);
    await lab.killHostProcesses('h1');
    await lab.setConnected('h1', false);
    watcher.stdin!.write(`go ${diedAt}\n`);
    const answered = z.record(z.string(), z.number().nullable()).parse(
      JSON.parse(
        String((await watcher).stdout)
          .trim()
          .split('\n')
          .pop() ?? '{}',
      ),
    );
    const times = Object.values(answered)
      .filter((v): v is number => v !== null)
      .sort((a, b) => a - b);
    const history = (await api<{ history: HostHistoryEntry[] }>('GET', '/v1/hosts/h1/history')).history;
    const down = history.find((e) => e.kind === 'state' && / → down/.test(e.message) && e.at >= diedAt);
    const failover = await until(
      'the failover record',
      async () => {
        const { failovers } = await api<{ failovers: FailoverRecord[] }>('GET', '/v1/failovers');
        return failovers.find((f) => f.hostId === 'h1' && f.state !== 'running');
      },
      60_000,
    );
    const lastRestart = Math.max(...failover.restarts.map((r) => r.at ?? 0));
    return {
      leaseMs,
      downAfterMs,
      workloads: count,
      detectionMs: (down?.at ?? failover.detectedAt) - diedAt,
      firstMs: times[0] ?? NaN,
      medianMs: times[Math.floor(times.length / 2)] ?? NaN,
      lastMs: times.length === count ? times[times.length - 1]! : NaN,
      failoverSpanMs: lastRestart - failover.startedAt,
      answered: times.length,
    };
  } finally {
    await cluster.stop().catch(() => undefined);
    await lab.destroy().catch((err: unknown) => console.error(`lab teardown: ${(err as Error).message}`));
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function printTable(cases: Case[]): void {
  const s = (ms: number) => (Number.isNaN(ms) ? '—' : (ms / 1000).toFixed(1));
  const header = ['lease / down after (s)', 'HA workloads', 'detected down (s)', 'first answering (s)', 'median (s)', 'all answering (s)', 'restarts span (s)', 'answered'];
  console.log(`machine: ${cpus()[0]?.model} ×${cpus().length}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}; reports every 1 s; times from the host's death`);
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const c of cases) {
    console.log(
      `| ${c.leaseMs / 1000} / ${c.downAfterMs / 1000} | ${c.workloads} | ${s(c.detectionMs)} | ${s(c.firstMs)} | ${s(c.medianMs)} | ${s(c.lastMs)} | ${s(c.failoverSpanMs)} | ${c.answered}/${c.workloads} |`,
    );
  }
}
