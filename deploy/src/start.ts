import { join, resolve } from 'node:path';
import { z } from 'zod';
import { createLogger, describeIssues } from '@ferry/runtime';
import type { HostView, WorkloadView } from '@ferry/protocol';
import { LocalCluster, repoRoot } from './cluster.ts';
import { createAndWaitRunning, DEMO_NETWORK, demoVpss, demoWorkloads, dropWorkloadsOfPreviousLab } from './demo.ts';
import { Lab } from './lab/lab.ts';

const log = createLogger('start');

/** An empty variable (`FERRY_REDIS_URL= npm start`) means unset. */
const optional = <S extends z.ZodType>(schema: S) => z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

const StartEnv = z
  .object({
    /** an existing Redis (no credentials in the URL) instead of the embedded one… */
    FERRY_REDIS_URL: optional(
      z.string().refine((url) => !/^[a-z]+:\/\/[^/]*@/i.test(url), 'must not contain credentials: name the administrator with FERRY_REDIS_ADMIN_USER and FERRY_REDIS_ADMIN_PASSWORD_FILE'),
    ),
    /** …and its administrator, who creates this cluster's users (ACL SETUSER) */
    FERRY_REDIS_ADMIN_USER: optional(z.string().min(1)),
    FERRY_REDIS_ADMIN_PASSWORD_FILE: optional(z.string().startsWith('/', 'must be an absolute path')),
    FERRY_API_PORT: optional(z.coerce.number().int().min(1).max(65_535)),
    FERRY_API_TOKEN: optional(z.string().min(16, 'must be at least 16 characters')),
    FERRY_STATE_DIR: z.string().min(1).default(resolve(repoRoot, '.ferry')),
    FERRY_HOSTS: z.coerce.number().int().min(1).max(16).default(3),
    FERRY_DEMO_PER_HOST: z.coerce.number().int().min(0).max(20).default(2),
    /** Debian 12 VPSs (sysvinit, sshd, nginx) in the demo */
    FERRY_DEMO_VPS: z.coerce.number().int().min(0).max(20).default(1),
    /** HA admission control (N+1): on in the demo unless turned off */
    FERRY_HA_ADMISSION: z.enum(['true', 'false']).default('true'),
    /** embedded nats-servers: one, or a cluster of three */
    FERRY_NATS_NODES: z.enum(['1', '3']).default('1'),
    /** the embedded Redis: one server (0), or a primary with that many replicas and three Sentinels */
    FERRY_REDIS_REPLICAS: z.enum(['0', '1', '2'], { message: 'must be 0 (one Redis server), 1 or 2 (a primary with that many replicas, and three Sentinels)' }).default('0'),
  })
  .refine((env) => !env.FERRY_REDIS_URL || (env.FERRY_REDIS_ADMIN_USER && env.FERRY_REDIS_ADMIN_PASSWORD_FILE), {
    path: ['FERRY_REDIS_ADMIN_USER'],
    message: "FERRY_REDIS_URL needs FERRY_REDIS_ADMIN_USER and FERRY_REDIS_ADMIN_PASSWORD_FILE (an administrator who creates the cluster's Redis users)",
  })
  .refine((env) => !env.FERRY_REDIS_URL || env.FERRY_REDIS_REPLICAS === '0', {
    path: ['FERRY_REDIS_REPLICAS'],
    message: 'replicas and Sentinels are for the embedded Redis: not with FERRY_REDIS_URL',
  });

const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(1)} GiB`;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

function hostTable(hosts: HostView[]): string {
  return hosts
    .map((h) => {
      const c = h.capacity;
      return `  ${h.id}  ${h.state}  ${c.address}  ${c.cpu.vendor} family ${c.cpu.family} model ${c.cpu.model} (${c.cpu.modelName}), ${c.cpu.count} CPUs  ${gib(c.memory.availableBytes)} free of ${gib(c.memory.totalBytes)}  ${c.criu ? `CRIU ${c.criu.version}` : 'no CRIU'}  ${c.containers.length} containers`;
    })
    .join('\n');
}

function workloadTable(workloads: WorkloadView[]): string {
  return workloads
    .map((w) => {
      const u = w.observed?.usage;
      const usage = u ? `${mib(u.memoryBytes)} of ${mib(u.memoryLimitBytes)}, ${u.cpuPercent}% CPU, ${u.pids} pids` : 'no usage yet';
      return `  ${w.spec.id}  on ${w.hostId}  ${w.spec.networks.map((n) => n.address).join(',')}  ${w.phase}  ${usage}`;
    })
    .join('\n');
}

async function main(): Promise<void> {
  const env = StartEnv.safeParse(process.env);
  if (!env.success) throw new Error(`bad environment:\n  ${describeIssues(env.error).join('\n  ')}`);
  const settings = env.data;
  if (process.getuid?.() !== 0) throw new Error('npm start runs its hosts as network namespaces and containers with runc: run it as root');
  const hostIds = Array.from({ length: settings.FERRY_HOSTS }, (_, i) => `host-${i + 1}`);

  let lab: Lab | null = null;
  let cluster: LocalCluster | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (why: string) => {
    stopping ??= (async () => {
      const running = cluster?.supervisor.list().filter((p) => !p.exited).length ?? 0;
      console.log(`\n${why}: stopping ${running} processes and the lab…`);
      await cluster?.stop();
      console.log('all processes stopped (checked by pid)');
      await lab?.destroy();
      if (lab) console.log(`lab ${lab.id} removed: containers, namespaces, links, cgroups, directories`);
    })();
    return stopping;
  };
  process.on(
    'SIGINT',
    () =>
      void stop('SIGINT').then(
        () => process.exit(0),
        () => process.exit(1),
      ),
  );
  process.on(
    'SIGTERM',
    () =>
      void stop('SIGTERM').then(
        () => process.exit(0),
        () => process.exit(1),
      ),
  );

  try {
    console.log(`creating a lab of ${hostIds.length} hosts (network namespaces) …`);
    lab = await Lab.create({ stateDir: settings.FERRY_STATE_DIR, hostIds, networks: [DEMO_NETWORK], log });
    console.log(`lab ${lab.id}: hosts ${lab.hosts.map((h) => `${h.id} (${h.address})`).join(', ')}; network ${DEMO_NETWORK.name} ${DEMO_NETWORK.subnet}`);
    cluster = new LocalCluster({
      stateDir: settings.FERRY_STATE_DIR,
      redisUrl: settings.FERRY_REDIS_URL,
      redisAdmin:
        settings.FERRY_REDIS_ADMIN_USER && settings.FERRY_REDIS_ADMIN_PASSWORD_FILE ? { user: settings.FERRY_REDIS_ADMIN_USER, passwordFile: settings.FERRY_REDIS_ADMIN_PASSWORD_FILE } : undefined,
      apiPort: settings.FERRY_API_PORT,
      apiToken: settings.FERRY_API_TOKEN,
      policyEnv: { FERRY_HA_ADMISSION: settings.FERRY_HA_ADMISSION },
      natsNodes: settings.FERRY_NATS_NODES === '3' ? 3 : 1,
      redisReplicas: Number(settings.FERRY_REDIS_REPLICAS),
      lab,
      log,
    });
    await cluster.start();
    for (const id of hostIds) cluster.startAgent(id);
    console.log(`Ferry is running (state and logs under ${settings.FERRY_STATE_DIR})`);
    console.log(
      `  NATS   ${cluster.natsUrl} (embedded${cluster.natsServers.length > 1 ? `: a cluster of ${cluster.natsServers.length} (FERRY_NATS_NODES), routes over TLS` : ''}; TLS, one NKey identity per process: ${cluster.secrets.dir})`,
    );
    const sentinel = cluster.redisSentinel;
    const where = sentinel
      ? `Sentinels ${sentinel.sentinels} (name ${sentinel.masterName}; primary now ${sentinel.primaryUrl}, ${sentinel.servers.length - 1} replica${sentinel.servers.length > 2 ? 's' : ''}: FERRY_REDIS_REPLICAS)`
      : cluster.redisUrl;
    console.log(
      `  Redis  ${where} (${settings.FERRY_REDIS_URL ? 'given' : `embedded, supervised; persistent: AOF (appendfsync everysec) in ${join(settings.FERRY_STATE_DIR, 'redis')}`}; ACL users per role, passwords in ${join(cluster.secrets.dir, 'redis')})`,
    );
    console.log(`  API    ${cluster.apiUrl}`);
    console.log(`  HA admission control (room for any one host to fail): ${settings.FERRY_HA_ADMISSION === 'true' ? 'on' : 'off'} (FERRY_HA_ADMISSION)`);
    console.log(`  token  ${cluster.token}`);
    console.log(`  UI     ${cluster.apiUrl}/ui/  (API reference ${cluster.apiUrl}/docs, metrics ${cluster.apiUrl}/metrics)`);
    console.log(`  CLI    packages/cli/bin/ferry context set local --url ${cluster.apiUrl} --token ${cluster.token}`);
    console.log(`  try    curl -H 'Authorization: Bearer ${cluster.token}' ${cluster.apiUrl}/v1/hosts`);
    await cluster.waitForHostsUp(hostIds, 30_000);
    const dropped = await dropWorkloadsOfPreviousLab(cluster, hostIds);
    if (dropped.length > 0) console.log(`state kept from the previous run; its lab's containers are gone: deleted their records (${dropped.join(', ')}) to create them again`);
    const workloads = await createAndWaitRunning(cluster, [...demoWorkloads(hostIds, settings.FERRY_DEMO_PER_HOST), ...demoVpss(settings.FERRY_DEMO_VPS)]);
    const hosts = (await cluster.get<{ hosts: HostView[] }>('/v1/hosts')).hosts.filter((h) => hostIds.includes(h.id));
    console.log(`${hostIds.length} hosts up:\n${hostTable(hosts)}`);
    console.log(`${workloads.length} demo containers running:\n${workloadTable(workloads)}`);
    console.log('Ctrl-C stops everything.');
  } catch (err) {
    console.error(`start failed: ${(err as Error).message}`);
    await stop('start failed').catch((cleanupErr: unknown) => console.error((cleanupErr as Error).message));
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  console.error((err as Error).message);
  process.exit(2);
});
