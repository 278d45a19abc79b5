import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { redisKeys } from '@ferry/protocol';
import { readRedisPassword } from '@ferry/runtime';
import type { LocalCluster, RedisRole } from '@ferry/deploy';
import { http, startTestCluster, type TestCluster } from './helpers/cluster.ts';

/** The first error a command gets (its message), or 'ok'. */
async function outcome(run: () => Promise<unknown>): Promise<string> {
  try {
    await run();
    return 'ok';
  } catch (err) {
    return (err as Error).message;
  }
}

/** Every process' command line and environment that this (root) test can read, NUL-separated. */
function everyProcess(): Array<{ pid: number; cmdline: string; environ: string }> {
  const seen = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      seen.push({ pid: Number(entry), cmdline: readFileSync(`/proc/${entry}/cmdline`, 'utf8'), environ: readFileSync(`/proc/${entry}/environ`, 'utf8') });
    } catch {
      // gone meanwhile, or a kernel thread
    }
  }
  return seen;
}

describe('Redis: no anonymous user, one ACL user per role, no password in arguments or environments', () => {
  let t: TestCluster;
  let embedded: TestCluster;
  const open: Redis[] = [];
  const as = (cluster: LocalCluster, role: RedisRole) => {
    const { user, passwordFile } = cluster.redisCredentials(role);
    const redis = new Redis(cluster.redisUrl, { username: user, password: readRedisPassword(passwordFile), maxRetriesPerRequest: 0 });
    open.push(redis);
    return redis;
  };
  const anonymous = (url: string) => {
    // no ready check (INFO): the first command is ours, and its answer is what we look at
    const redis = new Redis(url, { enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => {});
    open.push(redis);
    return redis;
  };

  beforeAll(async () => {
    t = await startTestCluster(); // on the run's shared Redis: its users made through the administrator
    embedded = await startTestCluster({ redisUrl: undefined, redisAdmin: undefined }); // its own redis-server
  });

  afterAll(async () => {
    for (const redis of open) redis.disconnect();
    await embedded?.close();
    await t?.close();
  });

  it('refuses a client without credentials (NOAUTH) and the default user, on both Redis servers', async () => {
    for (const cluster of [t.cluster, embedded.cluster]) {
      expect(cluster.redisUrl).toMatch(/^redis:\/\/[0-9.]+:\d+$/); // no credentials in the URL
      const nobody = anonymous(cluster.redisUrl);
      expect(await outcome(() => nobody.get(`${cluster.keyPrefix}:hosts`))).toMatch(/^NOAUTH/);
      expect(await outcome(() => nobody.call('AUTH', 'default', 'anything'))).toMatch(/^WRONGPASS/);
      const admin = cluster.redisAdmin();
      open.push(admin);
      expect((await admin.call('ACL', 'GETUSER', 'default')) as unknown[]).toEqual(expect.arrayContaining(['flags', expect.arrayContaining(['off'])]));
    }
    // the services got in all the same: the API reads Redis, the scheduler wrote its host records' counters
    expect((await http(`${embedded.cluster.apiUrl}/healthz`)).body).toMatchObject({ redis: true });
  });

  it('gives the API its cluster to read and only its own keys to write; no dangerous command to anyone', async () => {
    for (const cluster of [t.cluster, embedded.cluster]) {
      const k = redisKeys(cluster.keyPrefix);
      const api = as(cluster, 'api');
      const scheduler = as(cluster, 'scheduler');
      // reads: everything of its cluster
      expect(await outcome(() => api.hgetall(k.hosts))).toBe('ok');
      expect(await outcome(() => api.xrevrange(k.audit, '+', '-', 'COUNT', 1))).toBe('ok');
      // writes: what the API writes (a host's history here), not the schedulers' keys
      expect(await outcome(() => api.lpush(k.history('zz-test'), '{}'))).toBe('ok');
      for (const key of [k.hosts, k.capacityStats, `${cluster.keyPrefix}:leader`, k.placementLock, k.failovers, `${k.migrations}:tokens:source:h1`]) {
        expect(await outcome(() => api.set(key, 'x')), key).toMatch(/^NOPERM.*keys/);
      }
      // nothing outside its prefix, for either role (another cluster's keys, or none of Ferry's)
      for (const redis of [api, scheduler]) {
        expect(await outcome(() => redis.get('other:hosts'))).toMatch(/^NOPERM.*keys/);
        expect(await outcome(() => redis.set('stray', 'x'))).toMatch(/^NOPERM.*keys/);
        for (const command of [
          ['FLUSHALL'],
          ['FLUSHDB'],
          ['CONFIG', 'GET', '*'],
          ['KEYS', '*'],
          ['ACL', 'LIST'],
          ['CLIENT', 'LIST'],
          ['CLIENT', 'KILL', 'TYPE', 'normal'],
          ['SHUTDOWN'],
          ['MONITOR'],
          ['FUNCTION', 'FLUSH'],
          ['SCRIPT', 'FLUSH'],
          ['PUBLISH', 'x', 'y'],
        ]) {
          expect(await outcome(() => redis.call(command[0]!, ...command.slice(1))), command.join(' ')).toMatch(/^NOPERM.*command/);
        }
      }
      // the scheduler writes its own keys (and the other clusters' stay out of reach: above)
      expect(await outcome(() => scheduler.hincrby(k.capacityStats, 'zz-test', 0))).toBe('ok');
      await api.del(k.history('zz-test'));
      await scheduler.hdel(k.capacityStats, 'zz-test');
    }
  });

  it('keeps every password out of every command line and environment: only file paths are there', async () => {
    const passwordFiles = [inject('redisAdminPasswordFile'), ...[t.cluster, embedded.cluster].flatMap((c) => [c.redisCredentials('scheduler').passwordFile, c.redisCredentials('api').passwordFile])];
    for (const file of passwordFiles) expect(statSync(file).mode & 0o777, file).toBe(0o600);
    const passwords = passwordFiles.map((file) => readRedisPassword(file));
    expect(passwords.every((p) => p.length >= 43)).toBe(true);

    const processes = everyProcess();
    for (const p of processes) {
      for (const password of passwords) {
        expect(p.cmdline.includes(password), `a password in the command line of pid ${p.pid}`).toBe(false);
        expect(p.environ.includes(password), `a password in the environment of pid ${p.pid}`).toBe(false);
      }
    }
    const byPid = new Map(processes.map((p) => [p.pid, p]));
    // the services: a user and a password file, a URL without credentials
    for (const cluster of [t.cluster, embedded.cluster]) {
      for (const managed of cluster.supervisor.list().filter((m) => !m.exited && (m.name === 'api' || m.name.startsWith('scheduler')))) {
        const env = Object.fromEntries(
          byPid
            .get(managed.pid)!
            .environ.split('\0')
            .filter(Boolean)
            .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
        );
        const role = managed.name === 'api' ? 'api' : 'scheduler';
        expect(env).toMatchObject({ FERRY_REDIS_URL: cluster.redisUrl, FERRY_REDIS_USER: `${cluster.keyPrefix}-${role}`, FERRY_REDIS_PASSWORD_FILE: cluster.redisCredentials(role).passwordFile });
      }
    }
    // the redis-servers: started with their configuration file only, no flags (redis-server
    // rewrites its /proc title, so the embedded one's arguments are checked as spawned)
    for (const pid of [
      inject('redisPid'),
      ...embedded.cluster.supervisor
        .list()
        .filter((m) => m.name === 'redis')
        .map((m) => m.pid),
    ]) {
      expect(byPid.get(pid)!.cmdline).toMatch(/^redis-server/);
      expect(byPid.get(pid)!.cmdline).not.toContain('requirepass');
    }
    const embeddedRedis = embedded.cluster.supervisor.list().find((m) => m.name === 'redis')!;
    const configFile = join(embedded.cluster.secrets.dir, 'redis', 'redis.conf');
    const spawned = embeddedRedis.child.spawnargs;
    expect(spawned.slice(spawned.indexOf('redis-server'))).toEqual(['redis-server', configFile]);
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    const config = readFileSync(configFile, 'utf8');
    expect(config).toContain('user default off');
    expect(config).toMatch(new RegExp(`user ${embedded.cluster.keyPrefix}-api reset on #[0-9a-f]{64} resetchannels %R~${embedded.cluster.keyPrefix}:\\*`));
    for (const password of passwords) expect(config.includes(password)).toBe(false);
  });
});
