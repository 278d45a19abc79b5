import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WORKLOAD_INDEX_FIELD, changeLogKeys, fieldIndexKeys, queuePrefix, redisKeys } from '@ferry/protocol';
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
export const REDIS_SERVICE_COMMANDS = ['+@all', '-@dangerous', '-@scripting', '+eval', '+evalsha', '+eval_ro', '+evalsha_ro', '+script|load', '+script|exists', '-@pubsub', '+info'];

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
    // every write of a workload files it in the hash's change log, in the same Lua step
    ...Object.values(changeLogKeys(k.workloads)),
    // and in its index by host (the `-of` hash and one sorted set per host)
    fieldIndexKeys(k.workloads, WORKLOAD_INDEX_FIELD).of,
    `${fieldIndexKeys(k.workloads, WORKLOAD_INDEX_FIELD).prefix}*`,
    k.migrations,
    k.activeMigrations,
    k.migrationCancels,
    k.deferredMigrationSteps,
    k.maintenance,
    k.plans,
    k.planCancels,
    k.history('*'),
    k.removedHosts,
    k.workloadLock('*'),
    k.tokens,
    k.tokenNames,
    k.tokenUse,
    k.audit,
    k.consoleTicket('*'),
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
  /**
   * a server of a replicated set (primary and replicas under Sentinel): how it signs in to
   * whichever server is the primary (`masteruser`/`masterauth`: the replication user, whose
   * password therefore is in this file, which is why it is 0600 in a 0700 directory), and, for
   * a replica, the primary it starts from (`replicaof`). Every server of the set gets the
   * replication settings — after a failover, Sentinel turns any of them into a replica.
   */
  replication?: { user: string; password: string; replicaOf?: { host: string; port: number } };
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
    ...(config.replication ? replicationLines(config.replication) : []),
  ];
  return `${lines.join('\n')}\n`;
}

function replicationLines(r: NonNullable<RedisServerConfig['replication']>): string[] {
  return [
    `masteruser ${r.user}`,
    `masterauth ${quoted(r.password)}`,
    // a replica answers reads with data it has while the link is down (Ferry's services only talk to the primary)
    'replica-serve-stale-data yes',
    'replica-read-only yes',
    // the replica's first full copy streams at once instead of 5 s later (the default delay
    // waits for more replicas to share one transfer)
    'repl-diskless-sync yes',
    'repl-diskless-sync-delay 0',
    ...(r.replicaOf ? [`replicaof ${r.replicaOf.host} ${r.replicaOf.port}`] : []),
  ];
}

/** a value for a redis.conf line: quoted (our passwords are base64url, but be exact) */
const quoted = (value: string) => {
  if (!/^[\x21-\x7e]+$/.test(value) || /["'\\]/.test(value)) throw new Error('a Redis secret must be printable ASCII without quotes or backslashes');
  return `"${value}"`;
};

/**
 * Redis with replication under Sentinel (docs/failover.md, "Redis availability"): the users the
 * servers and Sentinels need besides the services'.
 *
 * - `ferry-replica`: how a replica signs in to the primary — nothing but the replication
 *   handshake and stream (PSYNC, REPLCONF, PING), no key, no channel.
 * - `ferry-sentinel`: how a Sentinel signs in to the servers (what Redis' documentation, "ACL rules
 *   for Sentinel and Replicas", lists: it watches with PING/INFO/ROLE, announces itself on the
 *   `__sentinel__:hello` channel — the only channel it gets — and fails over with
 *   MULTI/SLAVEOF/CONFIG REWRITE/CLIENT KILL/EXEC), and how Sentinels sign in to each other.
 */
export const REDIS_REPLICA_USER = 'ferry-replica';
export const REDIS_SENTINEL_USER = 'ferry-sentinel';
export const REDIS_REPLICA_RULES = ['resetchannels', '+psync', '+replconf', '+ping'];
export const REDIS_SENTINEL_RULES = [
  'resetchannels',
  '&__sentinel__:hello',
  '+multi',
  '+slaveof',
  '+ping',
  '+exec',
  '+subscribe',
  '+config|rewrite',
  '+role',
  '+publish',
  '+info',
  '+client|setname',
  '+client|kill',
  '+script|kill',
];

/**
 * Users *of a Sentinel* (a Sentinel has its own ACL, apart from the servers'):
 * - the other Sentinels (`ferry-sentinel`): PING, the hello messages they publish to each other,
 *   and the vote (SENTINEL IS-MASTER-DOWN-BY-ADDR);
 * - the services (`<prefix>-scheduler`, `<prefix>-api`, the same names and passwords as on the
 *   servers): only where the primary is (what ioredis asks: SENTINEL GET-MASTER-ADDR-BY-NAME, and
 *   SENTINEL SENTINELS to learn the other Sentinels) — not SENTINEL SET, RESET, FAILOVER,
 *   REMOVE, MONITOR, CONFIG, nor the names of the replicas.
 * - `ferry-admin`: everything (tests, tools, the readiness probe).
 */
export const SENTINEL_PEER_RULES = ['resetchannels', '&__sentinel__:hello', '+ping', '+publish', '+sentinel|is-master-down-by-addr', '+client|setname', '+info', '+role'];
export const SENTINEL_CLIENT_RULES = ['resetchannels', '+ping', '+sentinel|get-master-addr-by-name', '+sentinel|sentinels'];

export interface SentinelConfig {
  /** where this Sentinel listens */
  host: string;
  port: number;
  /** its working directory (it rewrites its own configuration file as it learns) */
  dir: string;
  /** null: to standard output */
  logFile: string | null;
  /** the name clients ask for (FERRY_REDIS_SENTINEL_NAME) */
  masterName: string;
  /** the primary to start from (Sentinel discovers the replicas and the other Sentinels from it) */
  master: { host: string; port: number };
  /** Sentinels that must agree the primary is down (a majority of them: 2 of 3) */
  quorum: number;
  /** the primary is considered down after this long without a valid reply */
  downAfterMs: number;
  /** a failover not finished by then is retried (by another Sentinel, twice this long later) */
  failoverTimeoutMs: number;
  /** how this Sentinel signs in to the servers and to the other Sentinels (REDIS_SENTINEL_USER and its password) */
  auth: { user: string; password: string };
  /** this Sentinel's own users (the other Sentinels', the services', the administrator's), password hashes only */
  users: RedisAclUser[];
}

/**
 * A Sentinel's configuration. It holds one password in clear (`auth-pass`/`sentinel-pass`: what it
 * signs in with), and Sentinel rewrites this file as it learns (replicas, the other Sentinels, a
 * new primary after a failover): keep it in a 0700 directory and run Sentinel with umask 077 —
 * redis-server writes its rewritten configuration with mode 0644 minus the umask.
 */
export function renderSentinelConfig(c: SentinelConfig): string {
  const lines = [
    `bind ${c.host}`,
    `port ${c.port}`,
    `dir ${c.dir}`,
    `logfile ${c.logFile ?? '""'}`,
    'protected-mode no', // not reachable without signing in: the default user is off
    'sentinel resolve-hostnames no',
    `sentinel monitor ${c.masterName} ${c.master.host} ${c.master.port} ${c.quorum}`,
    `sentinel down-after-milliseconds ${c.masterName} ${c.downAfterMs}`,
    `sentinel failover-timeout ${c.masterName} ${c.failoverTimeoutMs}`,
    `sentinel parallel-syncs ${c.masterName} 1`,
    `sentinel auth-user ${c.masterName} ${c.auth.user}`,
    `sentinel auth-pass ${c.masterName} ${quoted(c.auth.password)}`,
    `sentinel sentinel-user ${c.auth.user}`,
    `sentinel sentinel-pass ${quoted(c.auth.password)}`,
    'user default off',
    ...c.users.map((u) => `user ${u.name} ${aclUserArgs(u).join(' ')}`),
  ];
  return `${lines.join('\n')}\n`;
}
