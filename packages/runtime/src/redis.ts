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
    .refine((url) => !hasCredentials(url), 'must not contain credentials: put the user in FERRY_REDIS_USER (redisUser) and the password in a 0600 file named by FERRY_REDIS_PASSWORD_FILE (redisPasswordFile)'),
  /** the Redis ACL user this service connects as (e.g. <keyPrefix>-scheduler, <keyPrefix>-api) */
  redisUser: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 letters, digits, dots, dashes or underscores'),
  /** file holding that user's password (mode 0600, owned by the service's user) */
  redisPasswordFile: z.string().startsWith('/', 'must be an absolute path'),
};
export const REDIS_CONFIG_ENV = {
  FERRY_REDIS_URL: 'redisUrl',
  FERRY_REDIS_USER: 'redisUser',
  FERRY_REDIS_PASSWORD_FILE: 'redisPasswordFile',
};

export interface RedisSettings {
  redisUrl: string;
  redisUser: string;
  redisPasswordFile: string;
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
