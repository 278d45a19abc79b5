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

const PROBE = { name: 'probe', role: 'probe' } as const;

/**
 * A private nats-server on a free port of `host` (loopback, or a lab's management address):
 * the control plane's configuration (TLS both ways, every client one of its admitted NKey
 * identities). Admitting or revoking an identity later goes through
 * `secrets.changeIdentities`, which has it reload — the same path the API takes when a host joins.
 */
export async function startNats(supervisor: Supervisor, secrets: ControlPlaneSecrets, host = '127.0.0.1', name = 'nats'): Promise<EmbeddedNats> {
  const port = await freePort(host);
  const url = `nats://${host}:${port}`;
  await secrets.admit(PROBE);
  const configFile = secrets.writeNatsConfig(host, port);
  const managed = supervisor.spawn(name, 'nats-server', ['-c', configFile], { restart: INFRA_RESTART });
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
