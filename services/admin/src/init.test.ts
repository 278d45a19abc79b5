import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { initControlPlane } from './init.ts';

describe('ferry-admin init --nats-cluster', () => {
  const root = mkdtempSync(join(tmpdir(), 'ferry-init-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const dirs = (name: string) => ({ controlDir: join(root, name, 'control'), redisDir: join(root, name, 'control', 'redis-data'), configDir: join(root, name, 'etc'), user: userInfo().username });

  it('writes this machine\'s node as nats.conf (the unit and the reloads unchanged) and the other nodes\' files to copy, every service given all three', async () => {
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
