import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { queuePrefix, redisKeys } from '@ferry/protocol';
import { readRedisPassword } from '@ferry/runtime';

/** The roles that connect to Redis: each cluster has one user per service role; `admin` is the server's. */
export type RedisRole = 'scheduler' | 'api';

/** the server-wide administrator: tests, tools, the supervisor's readiness probe */
export const REDIS_ADMIN_USER = 'ferry-admin';

/** A cluster's user for a role: named after its key prefix, so clusters sharing a Redis never share a user. */
export const redisUserName = (keyPrefix: string, role: RedisRole) => `${keyPrefix}-${role}`;

/**
 * Commands the services may run: everything except the @dangerous category (FLUSHALL, FLUSHDB,
 * KEYS, CONFIG, DEBUG, SHUTDOWN, ACL SETUSER/LIST/…, CLIENT LIST/KILL, MONITOR, SORT, MIGRATE,
 * RESTORE, replication, SAVE, INFO…), scripting only as EVAL/EVALSHA (and SCRIPT LOAD/EXISTS: what
 * ioredis' and BullMQ's Lua commands use; no FUNCTION, no SCRIPT FLUSH/KILL), and no pub/sub (no
 * channel is granted: Ferry's events go over NATS, BullMQ's over streams). Back in: INFO, which
 * BullMQ (version and eviction policy check) and ioredis (ready check) read at connect.
 * CLIENT SETNAME (BullMQ names its connections) is not @dangerous.
 */
export const REDIS_SERVICE_COMMANDS = [
  '+@all',
  '-@dangerous',
  '-@scripting',
  '+eval',
  '+evalsha',
  '+eval_ro',
  '+evalsha_ro',
  '+script|load',
  '+script|exists',
  '-@pubsub',
  '+info',
];

/**
 * Keys the API writes (everything else of its cluster it may only read): the records an operator
 * changes through it, its tokens and audit stream, the workload locks it takes to remove a host,
 * and BullMQ's keys (adding jobs and flows runs BullMQ's Lua scripts, which read and write the
 * queue's keys: `<prefix>:q:<queue>:…`). Not the host records, capacity counters, leader key,
 * placement lock, failover records, migration slot tokens nor copy discards: those are the
 * schedulers'.
 */
export function apiWritableKeys(keyPrefix: string): string[] {
  const k = redisKeys(keyPrefix);
  return [
    `${queuePrefix(keyPrefix)}:*`,
    k.workloads,
    k.migrations,
    k.activeMigrations,
    k.migrationCancels,
    k.deferredMigrationSteps,
    k.maintenance,
    k.plans,
    k.history('*'),
    k.removedHosts,
    k.workloadLock('*'),
    k.tokens,
    k.tokenNames,
    k.tokenUse,
    k.audit,
    k.joinTokens,
    k.joinTokenUse,
  ];
}

/**
 * The ACL rules of a cluster's role (without its password), for `ACL SETUSER` and the `user`
 * lines of a redis.conf. The scheduler reads and writes all of its cluster's keys (`<prefix>:*`,
 * BullMQ's `<prefix>:q:*` included); the API reads them and writes those of apiWritableKeys.
 * Every key a Lua script touches is checked too (Redis checks each redis.call of a script against
 * the caller's ACL), so BullMQ's scripts stay within the prefix.
 */
export function redisAclRules(role: RedisRole, keyPrefix: string): string[] {
  if (!/^[a-z0-9_-]{1,32}$/.test(keyPrefix)) throw new Error(`bad key prefix ${keyPrefix}`); // no glob characters
  const keys = role === 'scheduler' ? [`~${keyPrefix}:*`] : [`%R~${keyPrefix}:*`, ...apiWritableKeys(keyPrefix).map((p) => `~${p}`)];
  return ['resetchannels', ...keys, ...REDIS_SERVICE_COMMANDS];
}

/** the administrator's rules: every key and command (it creates the clusters' users) */
export const REDIS_ADMIN_RULES = ['~*', '&*', '+@all'];

export const passwordHash = (password: string) => createHash('sha256').update(password).digest('hex');

/**
 * Redis passwords in one directory (0700): `<user>.password` (0600), 32 random bytes base64url,
 * made the first time a user is asked for and kept (a restarted cluster's users keep theirs).
 */
export class RedisPasswords {
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  }

  file(user: string): string {
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(user)) throw new Error(`bad Redis user name ${user}`);
    return join(this.dir, `${user}.password`);
  }

  /** the user's password file, made if missing */
  ensure(user: string): string {
    const file = this.file(user);
    if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    return file;
  }

  /** the password itself (refusing a file others can read) */
  password(user: string): string {
    return readRedisPassword(this.ensure(user));
  }
}

export interface RedisAclUser {
  name: string;
  /** SHA-256 (hex) of the password: what the server keeps, so its configuration holds no secret */
  passwordHash: string;
  rules: string[];
}

/** One `user` line of a redis.conf (or the arguments of ACL SETUSER after the name). */
export function aclUserArgs(user: RedisAclUser): string[] {
  return ['reset', 'on', `#${user.passwordHash}`, ...user.rules];
}

export interface RedisServerConfig {
  host: string;
  port: number;
  dataDir: string;
  /** null: to standard output (a systemd unit's journal) */
  logFile: string | null;
  users: RedisAclUser[];
  /**
   * keep the data across restarts (an installed control plane: append-only file, fsync every
   * second, plus snapshots); the lab's embedded Redis is as ephemeral as the lab
   */
  persistent?: boolean;
}

/**
 * redis-server's configuration: persistence only when asked (an installed control plane), protected mode, the `default` user
 * off (a client without credentials gets NOAUTH), and the ACL users with their password hashes.
 */
export function renderRedisConfig(config: RedisServerConfig): string {
  const lines = [
    `bind ${config.host}`,
    `port ${config.port}`,
    `dir ${config.dataDir}`,
    'dbfilename dump.rdb',
    `logfile ${config.logFile ?? '""'}`,
    'protected-mode yes',
    ...(config.persistent ? ['appendonly yes', 'appendfsync everysec', 'save 3600 1 300 100 60 10000'] : ['appendonly no', 'save ""']),
    // off: nobody can sign in as it. Its permissions are for redis-server's own replay of the AOF, which runs
    // MULTI/EXEC blocks (BullMQ's scripts' effects among them) as the default user: without them a
    // restart drops every transaction (redis/redis#14541, fixed upstream by #14545)
    'user default off resetpass ~* &* +@all',
    ...config.users.map((u) => `user ${u.name} ${aclUserArgs(u).join(' ')}`),
  ];
  return `${lines.join('\n')}\n`;
}
