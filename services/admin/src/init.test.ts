import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initControlPlane } from './init.ts';

describe('ferry-admin init --nats-cluster', () => {
  const root = mkdtempSync(join(tmpdir(), 'ferry-init-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const dirs = (name: string) => ({ controlDir: join(root, name, 'control'), redisDir: join(root, name, 'control', 'redis-data'), configDir: join(root, name, 'etc'), user: userInfo().username });

  it("writes this machine's node as nats.conf (the unit and the reloads unchanged) and the other nodes' files to copy, every service given all three", async () => {
    const d = dirs('a');
    const result = await initControlPlane({ address: '10.0.0.2', natsCluster: '10.0.0.1:4222,10.0.0.2:4222,10.0.0.3:4223', natsRoutePort: 6300, ...d });
    expect(result.natsUrl).toBe('nats://10.0.0.1:4222,nats://10.0.0.2:4222,nats://10.0.0.3:4223');
    const own = readFileSync(join(d.controlDir, 'nats.conf'), 'utf8');
    expect(own).toContain('server_name: "nats-2"');
    expect(own).toContain('listen: "10.0.0.2:4222"');
    expect(own).toContain(`pid_file: "${join(d.controlDir, 'nats.pid')}"`);
    expect(own).toContain('routes: ["nats-route://10.0.0.1:6300", "nats-route://10.0.0.3:6300"]');
    expect(own).toContain(`cert_file: "${join(d.controlDir, 'nats-route.crt')}"`);
    const other = readFileSync(join(d.controlDir, 'nats-cluster', '10.0.0.3.conf'), 'utf8');
    expect(other).toContain('server_name: "nats-3"');
    expect(other).toContain('listen: "10.0.0.3:4223"');
    expect(other).toContain('listen: "10.0.0.3:6300"');
    expect(other).toContain('include "nats-authorization.conf"');
    expect(existsSync(join(d.controlDir, 'nats-cluster', '10.0.0.2.conf'))).toBe(false);
    for (const env of ['scheduler.env', 'api.env']) expect(readFileSync(join(d.configDir, env), 'utf8')).toContain(`FERRY_NATS_URL=${result.natsUrl}\n`);
    expect(readFileSync(join(d.configDir, 'api.env'), 'utf8')).toContain(`FERRY_NATS_ADVERTISE_URL=${result.natsUrl}\n`);
    expect(result.files).toContain(join(d.controlDir, 'nats-cluster', '10.0.0.1.conf'));
  });

  it('keeps the single server as it was without --nats-cluster', async () => {
    const d = dirs('b');
    const result = await initControlPlane({ address: '10.0.0.1', ...d });
    expect(result.natsUrl).toBe('nats://10.0.0.1:4222');
    const text = readFileSync(join(d.controlDir, 'nats.conf'), 'utf8');
    expect(text).not.toContain('cluster {');
    expect(text).not.toContain('server_name');
    expect(existsSync(join(d.controlDir, 'nats-route.crt'))).toBe(false);
  });

  it('refuses a cluster that leaves this machine out, repeats a machine, or has an even number of nodes', async () => {
    await expect(initControlPlane({ address: '10.0.0.9', natsCluster: '10.0.0.1:4222,10.0.0.2:4222,10.0.0.3:4222', ...dirs('c') })).rejects.toThrow(/this machine's address/);
    await expect(initControlPlane({ address: '10.0.0.1', natsCluster: '10.0.0.1:4222,10.0.0.1:4223,10.0.0.3:4222', ...dirs('d') })).rejects.toThrow(/one node per machine/);
    await expect(initControlPlane({ address: '10.0.0.1', natsCluster: '10.0.0.1:4222,10.0.0.2:4222', ...dirs('e') })).rejects.toThrow(/3 \(or 5, 7\) nodes/);
    await expect(initControlPlane({ address: '10.0.0.1', natsCluster: '10.0.0.1,10.0.0.2:4222,10.0.0.3:4222', ...dirs('f') })).rejects.toThrow(/IPv4:port/);
  });
});

describe('ferry-admin init --redis-sentinel', () => {
  const root = mkdtempSync(join(tmpdir(), 'ferry-init-sentinel-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const dirs = (name: string) => ({ controlDir: join(root, name, 'control'), redisDir: join(root, name, 'control', 'redis-data'), configDir: join(root, name, 'etc'), user: userInfo().username });

  it("writes this machine's primary and Sentinel, the other machines' replica and Sentinel to copy, and gives the services the Sentinels", async () => {
    const d = dirs('a');
    const result = await initControlPlane({ address: '10.0.0.1', redisSentinel: '10.0.0.1,10.0.0.2,10.0.0.3', sentinelPort: 26400, ...d });
    expect(result.redisSentinels).toBe('10.0.0.1:26400,10.0.0.2:26400,10.0.0.3:26400');
    for (const env of ['scheduler.env', 'api.env']) {
      const text = readFileSync(join(d.configDir, env), 'utf8');
      expect(text).toContain('FERRY_REDIS_SENTINELS=10.0.0.1:26400,10.0.0.2:26400,10.0.0.3:26400\n');
      expect(text).toContain('FERRY_REDIS_SENTINEL_NAME=ferry\n');
      expect(text).not.toContain('FERRY_REDIS_URL');
    }
    const password = (user: string) => readFileSync(join(d.controlDir, 'redis', `${user}.password`), 'utf8').trim();
    const primary = readFileSync(join(d.controlDir, 'redis.conf'), 'utf8');
    expect(primary).toContain('bind 10.0.0.1 127.0.0.1\n');
    expect(primary).not.toMatch(/^replicaof/m);
    expect(primary).toContain(`masterauth "${password('ferry-replica')}"`); // it becomes a replica after a failover
    expect(primary).toMatch(/^user ferry-replica reset on #[0-9a-f]{64} resetchannels \+psync \+replconf \+ping$/m);
    expect(primary).toMatch(/^user ferry-sentinel reset on #[0-9a-f]{64} resetchannels &__sentinel__:hello \+multi /m);
    expect(primary).not.toContain(password('ferry-api'));
    const replica = readFileSync(join(d.controlDir, 'redis-sentinel', '10.0.0.3', 'redis.conf'), 'utf8');
    expect(replica).toContain('bind 10.0.0.3 127.0.0.1\n');
    expect(replica).toContain('replicaof 10.0.0.1 6379\n');
    const sentinel = readFileSync(join(d.controlDir, 'redis-sentinel', '10.0.0.2', 'sentinel.conf'), 'utf8');
    expect(sentinel).toContain('port 26400\n');
    expect(sentinel).toContain('sentinel monitor ferry 10.0.0.1 6379 2\n');
    expect(sentinel).toContain('sentinel down-after-milliseconds ferry 5000\n');
    expect(sentinel).toContain('sentinel auth-user ferry ferry-sentinel\n');
    expect(sentinel).toContain('user default off\n');
    expect(sentinel).toMatch(/^user ferry-api reset on #[0-9a-f]{64} resetchannels \+ping \+sentinel\|get-master-addr-by-name \+sentinel\|sentinels$/m);
    expect(sentinel).not.toContain(password('ferry-api'));
    expect(existsSync(join(d.controlDir, 'sentinel.conf'))).toBe(true);
    expect(existsSync(join(d.controlDir, 'redis-sentinel', '10.0.0.1'))).toBe(false);
    for (const file of [join(d.controlDir, 'sentinel.conf'), join(d.controlDir, 'redis-sentinel', '10.0.0.2', 'redis.conf'), join(d.controlDir, 'redis-sentinel', '10.0.0.2', 'sentinel.conf')]) {
      expect(statSync(file).mode & 0o777, file).toBe(0o600);
    }
    expect(statSync(join(d.controlDir, 'redis-sentinel')).mode & 0o777).toBe(0o700);
  });

  it('refuses a set that leaves this machine out, repeats a machine, or is not three', async () => {
    await expect(initControlPlane({ address: '10.0.0.9', redisSentinel: '10.0.0.1,10.0.0.2,10.0.0.3', ...dirs('b') })).rejects.toThrow(/this machine's address/);
    await expect(initControlPlane({ address: '10.0.0.1', redisSentinel: '10.0.0.1,10.0.0.1,10.0.0.3', ...dirs('c') })).rejects.toThrow(/every address once/);
    await expect(initControlPlane({ address: '10.0.0.1', redisSentinel: '10.0.0.1,10.0.0.2', ...dirs('d') })).rejects.toThrow(/3 machines/);
    await expect(initControlPlane({ address: '10.0.0.1', redisSentinel: '10.0.0.1:6379,10.0.0.2,10.0.0.3', ...dirs('e') })).rejects.toThrow(/IPv4,IPv4,IPv4/);
  });
});
