import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { connect } from 'nats';
import { freePort, natsConnectOptions, readRedisPassword } from '@ferry/runtime';
import type { ControlPlaneSecrets } from '@ferry/security';
import { passwordHash, REDIS_ADMIN_RULES, REDIS_ADMIN_USER, renderRedisConfig, type RedisAclUser, type RedisPasswords } from '@ferry/security';
import type { ManagedProcess, RestartPolicy, Supervisor } from './supervisor.ts';

/**
 * The control plane's embedded servers are restarted when they die (same port, same
 * configuration): quickly at first, backing off to 5 s while they keep failing.
 */
export const INFRA_RESTART: RestartPolicy = { policy: 'on-failure', minBackoffMs: 200, maxBackoffMs: 5_000, resetAfterMs: 30_000 };

export interface Embedded {
  url: string;
  process: ManagedProcess;
}

async function waitFor(what: string, probe: () => Promise<boolean>, managed: ManagedProcess, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (managed.exited) throw new Error(`${what} exited during start-up; see ${managed.logFile}`);
    if (await probe().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms; see ${managed.logFile}`);
}

export type EmbeddedNats = Embedded;

/** A NATS cluster's nodes: every client gets `url`, all of them comma-separated. */
export interface EmbeddedNatsCluster {
  url: string;
  nodes: Array<EmbeddedNats & { name: string; routeAddress: string }>;
}

const PROBE = { name: 'probe', role: 'probe' } as const;

/**
 * A private nats-server on a free port of `host` (loopback, or a lab's management address):
 * the control plane's configuration (TLS both ways, every client one of its admitted NKey
 * identities). Admitting or revoking an identity later goes through
 * `secrets.changeIdentities`, which has it reload — the same path the API takes when a host joins.
 */
export async function startNats(supervisor: Supervisor, secrets: ControlPlaneSecrets, host = '127.0.0.1', name = 'nats', restart: RestartPolicy = INFRA_RESTART): Promise<EmbeddedNats> {
  const port = await freePort(host);
  const url = `nats://${host}:${port}`;
  await secrets.admit(PROBE);
  const configFile = secrets.writeNatsConfig(host, port);
  const managed = supervisor.spawn(name, 'nats-server', ['-c', configFile], { restart });
  const probe = secrets.clientSettings(PROBE.name, url);
  await waitFor(
    'nats-server',
    async () => {
      const nc = await connect({ ...natsConnectOptions(probe), reconnect: false, timeout: 500 });
      await nc.close();
      return true;
    },
    managed,
  );
  return { url, process: managed };
}

async function probeConnect(secrets: ControlPlaneSecrets, url: string) {
  const nc = await connect({ ...natsConnectOptions(secrets.clientSettings(PROBE.name, url)), reconnect: false, timeout: 500 });
  try {
    return nc.info;
  } finally {
    await nc.close();
  }
}

/**
 * The cluster members a node knows now: the client URLs it tells clients about (`connect_urls`,
 * its own included), which it learns from its routes. A node that lists every node's URL has a
 * route to each of them. Null when it does not answer.
 */
export async function natsClusterView(secrets: ControlPlaneSecrets, url: string): Promise<string[] | null> {
  const info = await probeConnect(secrets, url).catch(() => null);
  return info ? [...(info.connect_urls ?? [])].sort() : null;
}

/**
 * `count` supervised nats-servers on free ports of `host`, clustered (`nats-1`, `nats-2`, …):
 * each with its own configuration, pid file and log in the control plane's directory, all
 * including the one authorization file (so `secrets.changeIdentities` reloads every one of them),
 * routes over TLS with the cluster CA and the route certificate (docs/security.md). Resolves once
 * every node answers and lists every other one.
 */
export async function startNatsCluster(supervisor: Supervisor, secrets: ControlPlaneSecrets, host = '127.0.0.1', count = 3, restart: RestartPolicy = INFRA_RESTART): Promise<EmbeddedNatsCluster> {
  await secrets.admit(PROBE);
  await secrets.issueRouteCertificate({ ips: [host], dns: ['localhost'] });
  const ports = await distinctFreePorts(host, 2 * count);
  const clientPorts = ports.slice(0, count);
  const routePorts = ports.slice(count);
  const routeAddresses = routePorts.map((p) => `${host}:${p}`);
  const nodes: EmbeddedNatsCluster['nodes'] = [];
  for (let i = 0; i < count; i++) {
    const name = `nats-${i + 1}`;
    const configFile = secrets.writeNatsConfig(host, clientPorts[i]!, { node: name, clusterPort: routePorts[i]!, routes: routeAddresses.filter((_, j) => j !== i) });
    const managed = supervisor.spawn(name, 'nats-server', ['-c', configFile], { restart });
    nodes.push({ name, url: `nats://${host}:${clientPorts[i]}`, routeAddress: routeAddresses[i]!, process: managed });
  }
  for (const node of nodes) await waitFor(`nats-server ${node.name}`, async () => (await probeConnect(secrets, node.url), true), node.process);
  await waitForNatsCluster(secrets, nodes);
  return { url: nodes.map((n) => n.url).join(','), nodes };
}

/**
 * Waits until every node answers and lists every node (it has its routes); a single server only
 * has to answer. A node restarted by the supervisor meanwhile is waited for, not a failure.
 */
export async function waitForNatsCluster(secrets: ControlPlaneSecrets, nodes: Array<{ name: string; url: string; process: ManagedProcess }>, timeoutMs = 15_000): Promise<void> {
  const want = JSON.stringify(nodes.map((n) => new URL(n.url).host).sort());
  const deadline = Date.now() + timeoutMs;
  for (const node of nodes) {
    for (;;) {
      const view = await natsClusterView(secrets, node.url);
      if (view && (nodes.length === 1 || JSON.stringify(view) === want)) break;
      if (Date.now() > deadline) throw new Error(`${node.name} is not routed to every NATS node within ${timeoutMs} ms (it lists ${JSON.stringify(view)}); see ${node.process.logFile}`);
      await sleep(100);
    }
  }
}

async function distinctFreePorts(host: string, count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort(host));
  return [...ports];
}

export interface RedisCredentials {
  user: string;
  /** the user's password file (0600) */
  passwordFile: string;
}

export interface EmbeddedRedis extends Embedded {
  /** the server's administrator (every key and command): the readiness probe, tests, tools */
  admin: RedisCredentials;
}

/**
 * A private redis-server on a free port of `host` (loopback, or a lab's management address),
 * supervised (restarted on the same port with the same file when it dies). `persistent`: an
 * append-only file with `appendfsync everysec` (and RDB snapshots) in `dataDir`, so a restart —
 * of redis-server, or of the whole cluster from the same state directory — keeps the cluster's
 * state (docs/failover.md, "Durable state"); without it (the test run's shared Redis) nothing is
 * written to disk. Its settings
 * are in a generated file (0600, next to the passwords), not on its command line: the `default`
 * user off, an administrator (`ferry-admin`) and the given users, each with the SHA-256 of its
 * password — so neither the file, the command line nor any URL holds a password. The passwords
 * are in `passwords`' directory, one 0600 file each.
 */
export async function startRedis(
  supervisor: Supervisor,
  dataDir: string,
  options: { host?: string; name?: string; passwords: RedisPasswords; users?: RedisAclUser[]; persistent?: boolean; restart?: RestartPolicy },
): Promise<EmbeddedRedis> {
  const host = options.host ?? '127.0.0.1';
  const name = options.name ?? 'redis';
  const port = await freePort(host);
  mkdirSync(dataDir, { recursive: true });
  const admin: RedisCredentials = { user: REDIS_ADMIN_USER, passwordFile: options.passwords.ensure(REDIS_ADMIN_USER) };
  const adminPassword = readRedisPassword(admin.passwordFile);
  const users: RedisAclUser[] = [{ name: REDIS_ADMIN_USER, passwordHash: passwordHash(adminPassword), rules: REDIS_ADMIN_RULES }, ...(options.users ?? [])];
  const configFile = join(options.passwords.dir, `${name}.conf`);
  writeFileSync(configFile, renderRedisConfig({ host, port, dataDir, logFile: join(dataDir, 'redis.log'), users, persistent: options.persistent ?? false }), { mode: 0o600 });
  chmodSync(configFile, 0o600); // an earlier run's file keeps its mode otherwise
  const managed = supervisor.spawn(name, 'redis-server', [configFile], { restart: options.restart ?? INFRA_RESTART });
  const url = `redis://${host}:${port}`;
  await waitFor(
    'redis-server',
    async () => {
      const redis = new Redis(url, { username: admin.user, password: adminPassword, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      redis.on('error', () => {}); // refused connections are expected until it listens
      try {
        await redis.connect();
        return (await redis.ping()) === 'PONG';
      } finally {
        redis.disconnect();
      }
    },
    managed,
  );
  return { url, process: managed, admin };
}
