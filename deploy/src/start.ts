import { resolve } from 'node:path';
import { z } from 'zod';
import { createLogger, describeIssues } from '@ferry/runtime';
import type { HostView } from '@ferry/protocol';
import { LocalCluster, repoRoot } from './cluster.ts';

const log = createLogger('start');

/** An empty variable (`FERRY_NATS_URL= npm start`) means unset. */
const optional = <S extends z.ZodType>(schema: S) => z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

const StartEnv = z.object({
  FERRY_NATS_URL: optional(z.string()),
  FERRY_REDIS_URL: optional(z.string()),
  FERRY_API_PORT: optional(z.coerce.number().int().min(1).max(65_535)),
  FERRY_API_TOKEN: optional(z.string().min(16, 'must be at least 16 characters')),
  FERRY_STATE_DIR: z.string().min(1).default(resolve(repoRoot, '.ferry')),
  FERRY_HOSTS: z.coerce.number().int().min(1).max(16).default(3),
});

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;

function hostTable(hosts: HostView[]): string {
  const rows = hosts.map((h) => [
    h.id,
    h.state,
    `${h.capacity.cpu.vendor} fam ${h.capacity.cpu.family} model ${h.capacity.cpu.model} (${h.capacity.cpu.modelName}), ${h.capacity.cpu.count} cpus, ${h.capacity.cpu.flags.length} flags`,
    `${gib(h.capacity.memory.availableBytes)} free of ${gib(h.capacity.memory.totalBytes)}`,
    h.capacity.criu ? `CRIU ${h.capacity.criu.version}` : 'no CRIU',
  ]);
  return rows.map((row) => `  ${row.join('  ')}`).join('\n');
}

async function main(): Promise<void> {
  const env = StartEnv.safeParse(process.env);
  if (!env.success) throw new Error(`bad environment:\n  ${describeIssues(env.error).join('\n  ')}`);
  const settings = env.data;
  const cluster = new LocalCluster({
    stateDir: settings.FERRY_STATE_DIR,
    natsUrl: settings.FERRY_NATS_URL,
    redisUrl: settings.FERRY_REDIS_URL,
    persistentRedis: true,
    apiPort: settings.FERRY_API_PORT,
    apiToken: settings.FERRY_API_TOKEN,
    log,
  });

  let stopping: Promise<void> | null = null;
  const stop = (why: string) => {
    stopping ??= (async () => {
      console.log(`\n${why}: stopping ${cluster.supervisor.list().filter((p) => !p.exited).length} processes…`);
      await cluster.stop();
      console.log('all processes stopped (checked by pid)');
    })();
    return stopping;
  };
  process.on('SIGINT', () => void stop('SIGINT').then(() => process.exit(0), () => process.exit(1)));
  process.on('SIGTERM', () => void stop('SIGTERM').then(() => process.exit(0), () => process.exit(1)));

  try {
    await cluster.start();
    const hostIds = Array.from({ length: settings.FERRY_HOSTS }, (_, i) => `host-${i + 1}`);
    for (const id of hostIds) cluster.startAgent(id);
    console.log(`Ferry is running (state and logs under ${settings.FERRY_STATE_DIR})`);
    console.log(`  NATS   ${cluster.natsUrl}${settings.FERRY_NATS_URL ? '' : ' (embedded)'}`);
    console.log(`  Redis  ${cluster.redisUrl}${settings.FERRY_REDIS_URL ? '' : ' (embedded)'}`);
    console.log(`  API    ${cluster.apiUrl}`);
    console.log(`  token  ${cluster.token}`);
    console.log(`  try    curl -H 'Authorization: Bearer ${cluster.token}' ${cluster.apiUrl}/v1/hosts`);
    const list = await cluster.waitForHostsUp(hostIds);
    console.log(`${hostIds.length} hosts up:\n${hostTable(list.hosts.filter((h) => hostIds.includes(h.id)))}`);
    console.log('Ctrl-C stops everything.');
  } catch (err) {
    console.error(`start failed: ${(err as Error).message}`);
    await stop('start failed');
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  console.error((err as Error).message);
  process.exit(2);
});
