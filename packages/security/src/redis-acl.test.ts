import { mkdtempSync, rmSync, statSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { passwordHash, REDIS_REPLICA_RULES, redisAclRules, RedisPasswords, renderRedisConfig, renderSentinelConfig, SENTINEL_CLIENT_RULES } from './redis-acl.ts';

describe('Redis ACL users', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('confines the scheduler to its prefix and the API to reading it and writing its own keys', () => {
    const scheduler = redisAclRules('scheduler', 'c1');
    expect(scheduler).toContain('~c1:*');
    expect(scheduler).toContain('resetchannels');
    expect(scheduler).toEqual(expect.arrayContaining(['+@all', '-@dangerous', '-@scripting', '+evalsha', '+eval', '+info']));
    expect(scheduler.filter((r) => r.includes('~'))).toEqual(['~c1:*']);
    const api = redisAclRules('api', 'c1');
    expect(api).toContain('%R~c1:*');
    expect(api).toEqual(expect.arrayContaining(['~c1:q:*', '~c1:workloads', '~c1:plans', '~c1:tokens', '~c1:audit', '~c1:lock:workload:*', '~c1:history:*']));
    // the schedulers' keys: readable by the API, not writable
    for (const key of ['~c1:*', '~c1:hosts', '~c1:stats:capacity', '~c1:leader', '~c1:lock:placement', '~c1:failovers', '~c1:migrations:tokens:*']) expect(api).not.toContain(key);
    expect(() => redisAclRules('api', 'c*')).toThrow(/bad key prefix/);
  });

  it('renders a configuration with the default user off and password hashes only', () => {
    const text = renderRedisConfig({
      host: '127.0.0.1',
      port: 6390,
      dataDir: '/d',
      logFile: '/d/redis.log',
      users: [{ name: 'c1-api', passwordHash: passwordHash('secret'), rules: redisAclRules('api', 'c1') }],
    });
    expect(text).toContain('user default off resetpass ~* &* +@all\n'); // off; its rights are for the AOF replay only
    expect(text).toContain(`user c1-api reset on #${passwordHash('secret')} resetchannels %R~c1:* ~c1:q:*`);
    expect(text).not.toContain('secret');
    expect(text).not.toContain('requirepass');
  });

  it('keeps each password in its own 0600 file, 32 random bytes, reused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-redis-pw-'));
    dirs.push(dir);
    const passwords = new RedisPasswords(join(dir, 'redis'));
    const a = passwords.password('c1-api');
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(passwords.password('c1-api')).toBe(a);
    expect(passwords.password('c1-scheduler')).not.toBe(a);
    expect(statSync(passwords.file('c1-api')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'redis')).mode & 0o777).toBe(0o700);
    chmodSync(passwords.file('c1-api'), 0o644);
    expect(() => passwords.password('c1-api')).toThrow(/readable by others/);
    expect(() => passwords.file('../x')).toThrow(/bad Redis user/);
  });

  it('renders a replica: replication user and password, the primary to copy; a primary only the former (for after a failover)', () => {
    const base = { host: '127.0.0.1', port: 6391, dataDir: '/d', logFile: null, users: [] };
    const replica = renderRedisConfig({ ...base, replication: { user: 'ferry-replica', password: 'rpw', replicaOf: { host: '127.0.0.1', port: 6390 } } });
    expect(replica).toContain('masteruser ferry-replica\nmasterauth "rpw"\n');
    expect(replica).toContain('replicaof 127.0.0.1 6390\n');
    const primary = renderRedisConfig({ ...base, replication: { user: 'ferry-replica', password: 'rpw' } });
    expect(primary).toContain('masterauth "rpw"');
    expect(primary).not.toContain('replicaof');
    expect(renderRedisConfig(base)).not.toContain('masterauth');
    expect(() => renderRedisConfig({ ...base, replication: { user: 'r', password: 'a"b' } })).toThrow(/without quotes/);
    expect(REDIS_REPLICA_RULES).toEqual(['resetchannels', '+psync', '+replconf', '+ping']);
  });

  it('renders a Sentinel: the primary it watches, how it signs in, its own users by hash, the default user off', () => {
    const text = renderSentinelConfig({
      host: '127.0.0.1',
      port: 26390,
      dir: '/s',
      logFile: '/s/sentinel.log',
      masterName: 'ferry',
      master: { host: '127.0.0.1', port: 6390 },
      quorum: 2,
      downAfterMs: 1000,
      failoverTimeoutMs: 10_000,
      auth: { user: 'ferry-sentinel', password: 'spw' },
      users: [{ name: 'c1-api', passwordHash: passwordHash('secret'), rules: SENTINEL_CLIENT_RULES }],
    });
    expect(text).toContain('sentinel monitor ferry 127.0.0.1 6390 2\n');
    expect(text).toContain('sentinel down-after-milliseconds ferry 1000\n');
    expect(text).toContain('sentinel auth-user ferry ferry-sentinel\nsentinel auth-pass ferry "spw"\nsentinel sentinel-user ferry-sentinel\nsentinel sentinel-pass "spw"\n');
    expect(text).toContain('user default off\n');
    expect(text).toContain(`user c1-api reset on #${passwordHash('secret')} resetchannels +ping +sentinel|get-master-addr-by-name +sentinel|sentinels\n`);
    expect(text).not.toContain('secret');
  });
});
