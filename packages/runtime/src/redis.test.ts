import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadConfig } from './config.ts';
import { parseSentinels, REDIS_CONFIG_ENV, REDIS_CONFIG_FIELDS, redisAuthOptions, redisConnectionOptions } from './redis.ts';

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

  it('connects to the one server of the URL when no Sentinels are given', () => {
    const file = join(dir, 'url.password');
    writeFileSync(file, 'pw-u\n', { mode: 0o600 });
    const options = redisConnectionOptions(load({ FERRY_REDIS_URL: 'redis://10.0.0.1:6390/2', FERRY_REDIS_USER: 'c1-api', FERRY_REDIS_PASSWORD_FILE: file }));
    expect(options).toMatchObject({ host: '10.0.0.1', port: 6390, db: 2, username: 'c1-api', password: 'pw-u' });
    expect(options.sentinels).toBeUndefined();
    expect(() => redisConnectionOptions(load({ FERRY_REDIS_URL: 'redis://10.0.0.1:6390/x', FERRY_REDIS_USER: 'c1-api', FERRY_REDIS_PASSWORD_FILE: file }))).toThrow(/database number/);
  });

  it('reads the Sentinels (host:port,…) and the monitored name, and signs in to them as the same user by default', () => {
    const file = join(dir, 'sched.password');
    writeFileSync(file, 'pw-s\n', { mode: 0o600 });
    const config = load({ FERRY_REDIS_SENTINELS: '10.0.0.1:26379, 10.0.0.2:26379,sentinel-3.example:26380', FERRY_REDIS_USER: 'c1-scheduler', FERRY_REDIS_PASSWORD_FILE: file });
    expect(config.redisSentinels).toEqual([
      { host: '10.0.0.1', port: 26379 },
      { host: '10.0.0.2', port: 26379 },
      { host: 'sentinel-3.example', port: 26380 },
    ]);
    expect(config.redisSentinelName).toBe('ferry');
    const options = redisConnectionOptions(config);
    expect(options).toMatchObject({ name: 'ferry', role: 'master', username: 'c1-scheduler', password: 'pw-s', sentinelUsername: 'c1-scheduler', sentinelPassword: 'pw-s' });
    expect(options.host).toBeUndefined();
    expect(options.reconnectOnError(new Error("READONLY You can't write against a read only replica."))).toBe(2);
    expect(options.reconnectOnError(new Error('WRONGTYPE'))).toBe(false);
  });

  it('takes a separate Sentinel user and password file, and a name', () => {
    const file = join(dir, 'redis.password');
    const sentinelFile = join(dir, 'sentinel.password');
    writeFileSync(file, 'pw-r\n', { mode: 0o600 });
    writeFileSync(sentinelFile, 'pw-sentinel\n', { mode: 0o600 });
    const config = load({
      FERRY_REDIS_SENTINELS: '[::1]:26379',
      FERRY_REDIS_SENTINEL_NAME: 'ferry-prod',
      FERRY_REDIS_SENTINEL_USER: 'clients',
      FERRY_REDIS_SENTINEL_PASSWORD_FILE: sentinelFile,
      FERRY_REDIS_USER: 'c1-api',
      FERRY_REDIS_PASSWORD_FILE: file,
    });
    expect(redisConnectionOptions(config)).toMatchObject({
      sentinels: [{ host: '::1', port: 26379 }],
      name: 'ferry-prod',
      sentinelUsername: 'clients',
      sentinelPassword: 'pw-sentinel',
      password: 'pw-r',
    });
    chmodSync(sentinelFile, 0o640);
    expect(() => redisConnectionOptions(config)).toThrow(/readable by others.*Redis Sentinel password file must be 0600/);
  });

  it('refuses bad Sentinel settings with a message naming the variable and the entry', () => {
    const auth = { FERRY_REDIS_USER: 'c1-api', FERRY_REDIS_PASSWORD_FILE: '/etc/ferry/redis/api.password' };
    expect(() => load({ ...auth, FERRY_REDIS_SENTINELS: '10.0.0.1' })).toThrow(/redisSentinels: "10.0.0.1" is not host:port.*\(from FERRY_REDIS_SENTINELS\)/);
    expect(() => load({ ...auth, FERRY_REDIS_SENTINELS: '10.0.0.1:26379,,10.0.0.2:26379' })).toThrow(/an entry is empty/);
    expect(() => load({ ...auth, FERRY_REDIS_SENTINELS: '10.0.0.1:70000' })).toThrow(/not host:port/);
    expect(() => load({ ...auth, FERRY_REDIS_SENTINELS: 'redis://10.0.0.1:26379' })).toThrow(/host:port only/);
    expect(() => load({ ...auth, FERRY_REDIS_SENTINELS: 'u:pw@10.0.0.1:26379' })).toThrow(/no credentials/);
    expect(() => load({ ...auth, FERRY_REDIS_SENTINELS: '10.0.0.1:26379,10.0.0.1:26379' })).toThrow(/listed twice/);
    expect(() => load({ ...auth, FERRY_REDIS_SENTINELS: '10.0.0.1:26379', FERRY_REDIS_SENTINEL_NAME: 'a b' })).toThrow(/redisSentinelName: must be 1-64 letters/);
    expect(() => load({ ...auth, FERRY_REDIS_SENTINELS: '10.0.0.1:26379', FERRY_REDIS_SENTINEL_PASSWORD_FILE: 'rel' })).toThrow(/redisSentinelPasswordFile: must be an absolute path/);
    expect(parseSentinels('h1:1,h2:2')).toEqual([
      { host: 'h1', port: 1 },
      { host: 'h2', port: 2 },
    ]);
  });
});
