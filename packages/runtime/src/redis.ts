import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';

/**
 * How a service reaches Redis: a URL without credentials, an ACL user name and a file holding its
 * password — always: like NATS, Redis has no anonymous mode in Ferry. The password is never in the
 * URL, the environment or a command line — only the file's path is.
 */
export const REDIS_CONFIG_FIELDS = {
  /** redis://host:port[/db] — no user or password in it (they go in redisUser and redisPasswordFile) */
  redisUrl: z
    .string()
    .min(1)
    .default('redis://127.0.0.1:6379')
    .refine(
      (url) => !hasCredentials(url),
      'must not contain credentials: put the user in FERRY_REDIS_USER (redisUser) and the password in a 0600 file named by FERRY_REDIS_PASSWORD_FILE (redisPasswordFile)',
    ),
  /** the Redis ACL user this service connects as (e.g. <keyPrefix>-scheduler, <keyPrefix>-api) */
  redisUser: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, dots, dashes or underscores'),
  /** file holding that user's password (mode 0600, owned by the service's user) */
  redisPasswordFile: z.string().startsWith('/', 'must be an absolute path'),
  /**
   * Redis behind Sentinel (a primary, its replicas, three Sentinels): the Sentinels' addresses,
   * `host:port,host:port,…`. Set, the service asks them where the primary is (and again after a
   * failover) and redisUrl is not used.
   */
  redisSentinels: z
    .string()
    .transform((value, ctx) => {
      const parsed = parseSentinels(value);
      if (typeof parsed === 'string') {
        ctx.addIssue({ code: 'custom', message: parsed });
        return z.NEVER;
      }
      return parsed;
    })
    .optional(),
  /** the name the Sentinels monitor the primary under (`sentinel monitor <name> …`) */
  redisSentinelName: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, dots, dashes or underscores')
    .default('ferry'),
  /** the Sentinels' ACL user for this service (default: redisUser, which ferry-admin init and the lab give every Sentinel) */
  redisSentinelUser: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, dots, dashes or underscores')
    .optional(),
  /** that user's password file (0600; default: redisPasswordFile) */
  redisSentinelPasswordFile: z.string().startsWith('/', 'must be an absolute path').optional(),
};
export const REDIS_CONFIG_ENV = {
  FERRY_REDIS_URL: 'redisUrl',
  FERRY_REDIS_USER: 'redisUser',
  FERRY_REDIS_PASSWORD_FILE: 'redisPasswordFile',
  FERRY_REDIS_SENTINELS: 'redisSentinels',
  FERRY_REDIS_SENTINEL_NAME: 'redisSentinelName',
  FERRY_REDIS_SENTINEL_USER: 'redisSentinelUser',
  FERRY_REDIS_SENTINEL_PASSWORD_FILE: 'redisSentinelPasswordFile',
};

export interface SentinelAddress {
  host: string;
  port: number;
}

export interface RedisSettings {
  redisUrl: string;
  redisUser: string;
  redisPasswordFile: string;
  redisSentinels?: SentinelAddress[] | undefined;
  redisSentinelName?: string | undefined;
  redisSentinelUser?: string | undefined;
  redisSentinelPasswordFile?: string | undefined;
}

const HOST = /^(?:\d{1,3}(?:\.\d{1,3}){3}|[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])$/;

/**
 * `host:port,host:port,…` → the Sentinels' addresses, or what is wrong with it (a sentence naming
 * the bad entry). No credentials (an `@`), every entry once.
 */
export function parseSentinels(value: string): SentinelAddress[] | string {
  const entries = value.split(',').map((e) => e.trim());
  if (entries.some((e) => e === '')) return "must be host:port,host:port,… (the Sentinels' addresses, comma-separated): an entry is empty";
  const out: SentinelAddress[] = [];
  for (const entry of entries) {
    if (entry.includes('@') || entry.includes('://'))
      return `${JSON.stringify(entry)}: give host:port only (no scheme, no credentials: the user and password file are FERRY_REDIS_SENTINEL_USER / FERRY_REDIS_SENTINEL_PASSWORD_FILE)`;
    const m = /^(.+):(\d{1,5})$/.exec(entry);
    const port = m ? Number(m[2]) : NaN;
    if (!m || !HOST.test(m[1]!) || !(port >= 1 && port <= 65_535)) return `${JSON.stringify(entry)} is not host:port (a Sentinel's address, e.g. 10.0.0.1:26379)`;
    const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
    if (out.some((s) => s.host === host && s.port === port)) return `${entry} is listed twice`;
    out.push({ host, port });
  }
  return out;
}

function hasCredentials(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.username !== '' || parsed.password !== '';
  } catch {
    return false; // not a URL ioredis would read credentials from either
  }
}

/** Reads a Redis password, refusing a file that other users could read (like an NKey seed). */
export function readRedisPassword(file: string): string {
  return readSecretFile(file, 'Redis password');
}

/** A secret from its file (trimmed), refusing a file other users could read or one that is empty. */
export function readSecretFile(file: string, what: string): string {
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) throw new Error(`${file} is readable by others (mode ${mode.toString(8)}): a ${what} file must be 0600`);
  const secret = readFileSync(file, 'utf8').trim();
  if (secret === '') throw new Error(`${file} holds no ${what}`);
  return secret;
}

/** ioredis options for these settings: `{ username, password }`, the password read from its file. */
export function redisAuthOptions(settings: RedisSettings): { username: string; password: string } {
  return { username: settings.redisUser, password: readRedisPassword(settings.redisPasswordFile) };
}

/**
 * The ioredis options that say where Redis is and how to sign in (passwords read from their
 * files), for `new Redis(options)`; the caller adds its retry settings. Either the one server of
 * redisUrl, or — with redisSentinels — the primary the Sentinels name: ioredis asks them (signed
 * in as redisSentinelUser) at every (re)connection, checks the server it reaches says it is the
 * primary (INFO's role; a demoted one is left for the next), so after a failover the same client
 * reconnects to the new primary. A READONLY reply (a primary demoted under a live connection)
 * makes it reconnect and send the command again. BullMQ takes such a connection as it is
 * (`connection: redis`), workers' with maxRetriesPerRequest: null.
 */
export function redisConnectionOptions(settings: RedisSettings): RedisConnectionOptions {
  const auth = redisAuthOptions(settings);
  if (settings.redisSentinels && settings.redisSentinels.length > 0) {
    return {
      ...auth,
      sentinels: settings.redisSentinels.map(({ host, port }) => ({ host, port })),
      name: settings.redisSentinelName ?? 'ferry',
      role: 'master',
      sentinelUsername: settings.redisSentinelUser ?? settings.redisUser,
      sentinelPassword: readSecretFile(settings.redisSentinelPasswordFile ?? settings.redisPasswordFile, 'Redis Sentinel password'),
      reconnectOnError: reconnectOnReadOnly,
    };
  }
  const url = new URL(settings.redisUrl);
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new Error(`redisUrl ${settings.redisUrl}: only redis:// and rediss:// URLs`);
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) throw new Error(`redisUrl ${settings.redisUrl}: the path is the database number (redis://host:port/0)`);
  return {
    ...auth,
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : 6379,
    ...(db ? { db: Number(db) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
    reconnectOnError: reconnectOnReadOnly,
  };
}

/** READONLY: this server was made a replica under us (a failover): reconnect (to the primary) and resend */
export const reconnectOnReadOnly = (err: Error): 2 | false => (err.message.startsWith('READONLY') ? 2 : false);

/** A structural subset of ioredis' RedisOptions (this package does not depend on ioredis). */
export interface RedisConnectionOptions {
  username: string;
  password: string;
  host?: string;
  port?: number;
  db?: number;
  tls?: Record<string, never>;
  sentinels?: Array<{ host: string; port: number }>;
  name?: string;
  role?: 'master';
  sentinelUsername?: string;
  sentinelPassword?: string;
  reconnectOnError: (err: Error) => 2 | false;
}
