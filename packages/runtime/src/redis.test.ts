import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from './config.ts';
import { REDIS_CONFIG_ENV, REDIS_CONFIG_FIELDS, redisAuthOptions } from './redis.ts';

const Config = z.object(REDIS_CONFIG_FIELDS);
const load = (env: Record<string, string>) => loadConfig(Config, { env, envMap: REDIS_CONFIG_ENV });

describe('Redis settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-redis-settings-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the password from a 0600 file and gives ioredis username and password', () => {
    const file = join(dir, 'api.password');
    writeFileSync(file, 'pw-123\n', { mode: 0o600 });
    const config = load({ FERRY_REDIS_URL: 'redis://10.0.0.1:6390', FERRY_REDIS_USER: 'c1-api', FERRY_REDIS_PASSWORD_FILE: file });
    expect(redisAuthOptions(config)).toEqual({ username: 'c1-api', password: 'pw-123' });
  });

  it('refuses a password file others can read', () => {
    const file = join(dir, 'open.password');
    writeFileSync(file, 'pw\n', { mode: 0o644 });
    expect(() => redisAuthOptions(load({ FERRY_REDIS_USER: 'c1-api', FERRY_REDIS_PASSWORD_FILE: file }))).toThrow(/readable by others \(mode 644\)/);
  });

  it('refuses credentials in the URL, and a connection without a user and its password file', () => {
    const auth = { FERRY_REDIS_USER: 'c1-api', FERRY_REDIS_PASSWORD_FILE: '/etc/ferry/redis/api.password' };
    expect(() => load({ ...auth, FERRY_REDIS_URL: 'redis://:secret@127.0.0.1:6379' })).toThrow(/redisUrl: must not contain credentials.*FERRY_REDIS_URL/);
    expect(() => load({ ...auth, FERRY_REDIS_URL: 'redis://c1-api:secret@127.0.0.1:6379' })).toThrow(/must not contain credentials/);
    expect(() => load({})).toThrow(/redisUser[\s\S]*redisPasswordFile/);
    expect(() => load({ FERRY_REDIS_USER: 'c1-api' })).toThrow(/redisPasswordFile/);
    expect(() => load({ FERRY_REDIS_USER: 'c1-api', FERRY_REDIS_PASSWORD_FILE: 'relative' })).toThrow(/absolute path/);
  });
});
