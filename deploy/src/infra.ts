import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { connect } from 'nats';
import { z } from 'zod';
import { freePort, natsConnectOptions, readRedisPassword } from '@ferry/runtime';
import type { ControlPlaneSecrets } from '@ferry/security';
import {
  passwordHash,
  REDIS_ADMIN_RULES,
  REDIS_ADMIN_USER,
  REDIS_REPLICA_RULES,
  REDIS_REPLICA_USER,
  REDIS_SENTINEL_RULES,
  REDIS_SENTINEL_USER,
  renderRedisConfig,
  renderSentinelConfig,
  SENTINEL_CLIENT_RULES,
  SENTINEL_PEER_RULES,
  type RedisAclUser,
  type RedisPasswords,
} from '@ferry/security';
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

/** One server or Sentinel of a replicated Redis: its process name, address and process. */
export interface EmbeddedRedisNode {
  name: string;
  host: string;
  port: number;
  process: ManagedProcess;
}

export interface EmbeddedRedisSentinel {
  /** the name the Sentinels monitor the primary under (FERRY_REDIS_SENTINEL_NAME) */
  masterName: string;
  /** the Sentinels' addresses, comma-separated (FERRY_REDIS_SENTINELS) */
  sentinels: string;
  /** the servers (`redis-1`, `redis-2`, …); the first was the primary at start */
  servers: EmbeddedRedisNode[];
  /** the three Sentinels (`sentinel-1` … `sentinel-3`) */
  sentinelNodes: EmbeddedRedisNode[];
  /** the primary when it started (a failover moves it: ask the Sentinels) */
  primaryUrl: string;
  /** the administrator of every server and Sentinel (every key and command) */
  admin: RedisCredentials;
}

/** Where the previous run's Sentinels last saw the primary: the name of that server, or null. */
export function previousRedisPrimary(layoutFile: string, sentinelConfigs: string[], masterName: string): string | null {
  let ports: Record<string, number>;
  try {
    ports = z.object({ ports: z.record(z.string(), z.number()) }).parse(JSON.parse(readFileSync(layoutFile, 'utf8'))).ports;
  } catch {
    return null;
  }
  const votes = new Map<string, number>();
  for (const file of sentinelConfigs) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const m = new RegExp(`^sentinel monitor ${masterName} \\S+ (\\d+) \\d+$`, 'm').exec(text);
    const name = m ? Object.entries(ports).find(([, port]) => port === Number(m[1]))?.[0] : undefined;
    if (name) votes.set(name, (votes.get(name) ?? 0) + 1);
  }
  return [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
}

/**
 * Redis with a standby: a primary, `replicas` replicas and three Sentinels (quorum 2), each a
 * supervised redis-server on a free port of `host` (loopback in the lab), as secure as the single
 * server of startRedis: the default user off everywhere, password hashes in the servers' and
 * Sentinels' own ACLs, the replicas signed in to the primary as `ferry-replica` (replication
 * only) and the Sentinels to the servers and to each other as `ferry-sentinel` (what Sentinel
 * needs, docs/failover.md "Redis availability"), the services to the Sentinels as themselves
 * (where the primary is, nothing else). The files that must hold a password in clear —
 * `masterauth` of every server, `auth-pass`/`sentinel-pass` of every Sentinel — are 0600 in the
 * passwords' 0700 directory, and the processes run with umask 077, because Redis rewrites them
 * (CONFIG REWRITE at a failover, a Sentinel whenever it learns something) with 0644 minus the umask.
 * Nothing secret is on a command line: `redis-server <file> [--sentinel]`.
 *
 * After a restart of the whole set (`npm start` again), the server the Sentinels last named
 * primary starts as the primary again, the others as its replicas, so nothing it has is replaced
 * by an older copy.
 */
export async function startRedisSentinel(
  supervisor: Supervisor,
  dataDir: string,
  options: {
    host?: string;
    passwords: RedisPasswords;
    /** the services' users: on the servers with their rules, on the Sentinels with SENTINEL_CLIENT_RULES */
    users?: RedisAclUser[];
    persistent?: boolean;
    restart?: RestartPolicy;
    replicas?: number;
    masterName?: string;
    /** Sentinel's down-after-milliseconds: how long the primary may not answer before a failover starts */
    downAfterMs?: number;
    failoverTimeoutMs?: number;
  },
): Promise<EmbeddedRedisSentinel> {
  const host = options.host ?? '127.0.0.1';
  const replicas = options.replicas ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 4) throw new Error(`replicas must be 1-4, not ${replicas}`);
  const masterName = options.masterName ?? 'ferry';
  const restart = options.restart ?? INFRA_RESTART;
  const { passwords } = options;
  const password = (user: string) => readRedisPassword(passwords.ensure(user));
  const admin: RedisCredentials = { user: REDIS_ADMIN_USER, passwordFile: passwords.ensure(REDIS_ADMIN_USER) };
  const adminPassword = password(REDIS_ADMIN_USER);
  const user = (name: string, rules: string[]): RedisAclUser => ({ name, passwordHash: passwordHash(password(name)), rules });
  const serverUsers = [user(REDIS_ADMIN_USER, REDIS_ADMIN_RULES), user(REDIS_REPLICA_USER, REDIS_REPLICA_RULES), user(REDIS_SENTINEL_USER, REDIS_SENTINEL_RULES), ...(options.users ?? [])];
  const sentinelUsers = [user(REDIS_ADMIN_USER, REDIS_ADMIN_RULES), user(REDIS_SENTINEL_USER, SENTINEL_PEER_RULES), ...(options.users ?? []).map((u) => ({ ...u, rules: SENTINEL_CLIENT_RULES }))];

  const names = Array.from({ length: replicas + 1 }, (_, i) => `redis-${i + 1}`);
  const sentinelNames = ['sentinel-1', 'sentinel-2', 'sentinel-3'];
  const configOf = (name: string) => join(passwords.dir, `${name}.conf`);
  mkdirSync(dataDir, { recursive: true });
  const layoutFile = join(dataDir, 'sentinel-layout.json');
  const previous = previousRedisPrimary(layoutFile, sentinelNames.map(configOf), masterName);
  const primaryName = previous && names.includes(previous) ? previous : names[0]!;
  const ports = await distinctFreePorts(host, names.length + sentinelNames.length);
  const serverPorts = new Map(names.map((n, i) => [n, ports[i]!]));
  writeFileSync(layoutFile, `${JSON.stringify({ ports: Object.fromEntries(serverPorts) }, null, 2)}\n`);
  const primaryPort = serverPorts.get(primaryName)!;

  // a process whose files Redis may rewrite: umask 077 first (sh execs it in place: same pid)
  const spawnRedis = (name: string, args: string[]) => supervisor.spawn(name, 'sh', ['-c', 'umask 077 && exec "$0" "$@"', 'redis-server', ...args], { restart });
  const writeConfig = (name: string, text: string) => {
    writeFileSync(configOf(name), text, { mode: 0o600 });
    chmodSync(configOf(name), 0o600);
  };

  // the primary first, then its replicas (in the order they were named, the primary's place skipped)
  const ordered = [primaryName, ...names.filter((n) => n !== primaryName)];
  const servers: EmbeddedRedisNode[] = [];
  for (const name of ordered) {
    const port = serverPorts.get(name)!;
    const dir = join(dataDir, name);
    mkdirSync(dir, { recursive: true });
    const replicaOf = name === primaryName ? undefined : { host, port: primaryPort };
    writeConfig(
      name,
      renderRedisConfig({
        host,
        port,
        dataDir: dir,
        logFile: join(dir, 'redis.log'),
        users: serverUsers,
        persistent: options.persistent ?? false,
        replication: { user: REDIS_REPLICA_USER, password: password(REDIS_REPLICA_USER), ...(replicaOf ? { replicaOf } : {}) },
      }),
    );
    servers.push({ name, host, port, process: spawnRedis(name, [configOf(name)]) });
  }
  for (const server of servers) {
    await waitFor(`redis-server ${server.name}`, async () => (await withAdmin(host, server.port, adminPassword, (r) => r.ping())) === 'PONG', server.process);
  }
  // every replica has its copy before the Sentinels start: the first look a Sentinel takes at
  // the primary then lists them (it would otherwise only ask again 10 s later)
  for (const server of servers.slice(1)) {
    await waitFor(`${server.name} replicating`, async () => /master_link_status:up/.test(await withAdmin(host, server.port, adminPassword, (r) => r.info('replication'))), server.process, 30_000);
  }

  const sentinelNodes: EmbeddedRedisNode[] = [];
  sentinelNames.forEach((name, i) => {
    const port = ports[names.length + i]!;
    const dir = join(dataDir, name);
    mkdirSync(dir, { recursive: true });
    writeConfig(
      name,
      renderSentinelConfig({
        host,
        port,
        dir,
        logFile: join(dir, 'sentinel.log'),
        masterName,
        master: { host, port: primaryPort },
        quorum: 2,
        downAfterMs: options.downAfterMs ?? 1_000,
        failoverTimeoutMs: options.failoverTimeoutMs ?? 10_000,
        auth: { user: REDIS_SENTINEL_USER, password: password(REDIS_SENTINEL_USER) },
        users: sentinelUsers,
      }),
    );
    sentinelNodes.push({ name, host, port, process: spawnRedis(name, [configOf(name), '--sentinel']) });
  });
  const set: EmbeddedRedisSentinel = {
    masterName,
    sentinels: sentinelNodes.map((s) => `${s.host}:${s.port}`).join(','),
    servers,
    sentinelNodes,
    primaryUrl: `redis://${host}:${primaryPort}`,
    admin,
  };
  await waitForSentinels(set, adminPassword, replicas, 30_000);
  return set;
}

/** Runs one thing as the administrator of a server or Sentinel, on a connection of its own. */
async function withAdmin<T>(host: string, port: number, password: string, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis({ host, port, username: REDIS_ADMIN_USER, password, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 });
  redis.on('error', () => {}); // refused connections are expected until it listens
  try {
    await redis.connect();
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/** What one Sentinel says of the primary: where it is, its flags, how many replicas and other Sentinels it knows. */
export async function sentinelView(node: { host: string; port: number }, masterName: string, adminPassword: string) {
  return withAdmin(node.host, node.port, adminPassword, async (r) => {
    const flat = (await r.call('SENTINEL', 'MASTER', masterName)) as string[];
    const m = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) m.set(flat[i]!, flat[i + 1]!);
    return { primary: `${m.get('ip')}:${m.get('port')}`, flags: m.get('flags') ?? '', replicas: Number(m.get('num-slaves')), otherSentinels: Number(m.get('num-other-sentinels')) };
  });
}

/**
 * Waits until every Sentinel that runs agrees on one primary, flagged only `master` (not down),
 * and knows `replicas` replicas and the other Sentinels: a failover can then happen.
 */
export async function waitForSentinels(set: EmbeddedRedisSentinel, adminPassword: string, replicas: number, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    const running = set.sentinelNodes.filter((s) => !s.process.exited);
    const views = await Promise.all(running.map((s) => sentinelView(s, set.masterName, adminPassword).catch((err: Error) => err.message)));
    last = views;
    const ok = views.every((v) => typeof v === 'object' && v.flags === 'master' && v.replicas >= replicas && v.otherSentinels >= running.length - 1);
    const primaries = new Set(views.map((v) => (typeof v === 'object' ? v.primary : v)));
    if (ok && primaries.size === 1) return [...primaries][0] as string;
    if (Date.now() > deadline)
      throw new Error(`the Redis Sentinels do not agree on a healthy primary with ${replicas} replicas within ${timeoutMs} ms: ${JSON.stringify(last)}; see ${set.sentinelNodes[0]!.process.logFile}`);
    await sleep(200);
  }
}
