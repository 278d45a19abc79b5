/**
 * The floor under issue 16's placement rate: BullMQ alone on this machine, one job per workload as
 * Ferry queues them (the API's job options, the scheduler's worker concurrency and lock), against
 * a redis-server started as the cluster starts it. `npm run bench queue`.
 *
 * Three rows, side by side in one run:
 * - jobs added by 32 clients, one at a time (what 32 API clients creating workloads cost Redis);
 * - an empty processor: added → completed, the queue's own throughput with nothing to do;
 * - a processor doing what every placement does at the least: read the workload's record and
 *   write it back once (one HGET, one HSET), as a placement's record write.
 * Each row runs `BENCH_QUEUE_REPEATS` times (default 5); p50 / p99 over the runs (nearest rank).
 * If the empty processor cannot reach 1,000 jobs/s, no placement path of a job per workload can.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { Supervisor, startRedis } from '@ferry/deploy';
import { RedisPasswords } from '@ferry/security';
import { createLogger, readRedisPassword } from '@ferry/runtime';

const JOBS = Number(process.env.BENCH_QUEUE_JOBS ?? 5000);
const REPEATS = Number(process.env.BENCH_QUEUE_REPEATS ?? 5);
const CLIENTS = 32;
const CONCURRENCY = 32;
/** the API's options for a workload job (services/api/src/routes/workloads.ts) */
const JOB_OPTIONS = { attempts: 4, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: { age: 24 * 3600, count: 5000 }, removeOnFail: { age: 7 * 24 * 3600 } } as const;

type Processor = (redis: Redis, job: Job) => Promise<void>;

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
};

/** Adds JOBS jobs from CLIENTS concurrent clients; resolves with the wall time. */
async function addAll(queue: Queue, run: number): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      for (let i = next++; i < JOBS; i = next++) await queue.add('create', { id: `w-${run}-${i}`, spec: { memoryMiB: 512, vcpus: 1 } }, { ...JOB_OPTIONS, jobId: `w-${run}-${i}` });
    }),
  );
  return performance.now() - started;
}

/** Jobs/s from the first add to the last job completed, with `processor` as the worker's work. */
async function throughput(connect: () => Redis, prefix: string, run: number, processor: Processor | null): Promise<{ addPerS: number; completedPerS: number }> {
  const queueName = `floor-${run}-${processor ? 'p' : 'add'}`;
  const queue = new Queue(queueName, { connection: connect(), prefix });
  const records = connect();
  let done = 0;
  let finished!: () => void;
  const all = new Promise<void>((resolve) => (finished = resolve));
  const worker = processor
    ? new Worker(
        queueName,
        async (job) => {
          await processor(records, job);
        },
        { connection: connect(), prefix, concurrency: CONCURRENCY, lockDuration: 30_000 },
      )
    : null;
  worker?.on('completed', () => {
    if (++done === JOBS) finished();
  });
  const started = performance.now();
  const addMs = await addAll(queue, run);
  if (worker) await all;
  const totalMs = performance.now() - started;
  await worker?.close();
  await queue.obliterate({ force: true });
  await queue.close();
  records.disconnect();
  return { addPerS: (JOBS / addMs) * 1000, completedPerS: (JOBS / totalMs) * 1000 };
}

export async function runQueueFloorBenchmark(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-bench-queue-'));
  const log = createLogger('bench').child({}, { level: 'warn' });
  const supervisor = new Supervisor(join(dir, 'run.json'), join(dir, 'logs'), log);
  const connections: Redis[] = [];
  try {
    const passwords = new RedisPasswords(join(dir, 'secrets'));
    const redis = await startRedis(supervisor, join(dir, 'redis'), { passwords });
    const password = readRedisPassword(redis.admin.passwordFile);
    // BullMQ leaves connections it was given open: every one is closed at the end
    const connect = () => {
      const connection = new Redis(redis.url, { username: redis.admin.user, password, maxRetriesPerRequest: null });
      connections.push(connection);
      return connection;
    };
    const rows: Array<{ name: string; values: number[] }> = [
      { name: `jobs added, ${CLIENTS} clients one at a time (jobs/s)`, values: [] },
      { name: `added → completed, empty processor, concurrency ${CONCURRENCY} (jobs/s)`, values: [] },
      { name: 'added → completed, one record read and written per job (jobs/s)', values: [] },
    ];
    const recordWrite: Processor = async (r, job) => {
      const id = (job.data as { id: string }).id;
      const current = await r.hget('floor:records', id);
      await r.hset('floor:records', id, current ?? JSON.stringify({ id, phase: 'placing', hostId: 'h1' }));
    };
    for (let run = 0; run < REPEATS; run++) {
      rows[0]!.values.push((await throughput(connect, 'floor:q', run, null)).addPerS);
      rows[1]!.values.push((await throughput(connect, 'floor:q', run, async () => {})).completedPerS);
      rows[2]!.values.push((await throughput(connect, 'floor:q', run, recordWrite)).completedPerS);
    }
    console.log(`BullMQ floor: ${JOBS} jobs per run, ${REPEATS} runs per row, redis-server as the cluster runs it; ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}`);
    console.log('| row | p50 | p99 (slowest run) |');
    console.log('|---|---:|---:|');
    // p99 of a rate is its slowest run: the 1st percentile of the rates
    for (const row of rows) console.log(`| ${row.name} | ${percentile(row.values, 50).toFixed(0)} | ${percentile(row.values, 1).toFixed(0)} |`);
  } finally {
    for (const connection of connections) connection.disconnect();
    await supervisor.stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}
