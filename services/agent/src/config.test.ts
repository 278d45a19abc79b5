import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '@ferry/runtime';
import { loadAgentConfig, metricsHostOf } from './config.ts';

const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-config-'));
const file = (name: string, body: unknown) => {
  const path = join(dir, name);
  writeFileSync(path, typeof body === 'string' ? body : JSON.stringify(body));
  return path;
};

/** what every service needs to reach NATS (paths only; nothing is read here) */
const NATS = {
  FERRY_NATS_SEED_FILE: '/etc/ferry/nats/agent-h1.nk',
  FERRY_NATS_CA_FILE: '/etc/ferry/ca.crt',
  FERRY_NATS_CERT_FILE: '/etc/ferry/agent.crt',
  FERRY_NATS_KEY_FILE: '/etc/ferry/agent.key',
};

describe('agent config', () => {
  it('refuses to run without a NATS identity and the cluster CA: there is no anonymous mode', () => {
    expect(() => loadAgentConfig(file('bare.json', { hostId: 'h1' }), {})).toThrow(/natsSeedFile[\s\S]*natsCaFile/);
  });

  it('fills defaults and lets the environment override the file', () => {
    const config = loadAgentConfig(file('ok.json', { hostId: 'h1', reportIntervalMs: 500 }), {
      FERRY_REPORT_INTERVAL_MS: '2000',
      FERRY_NATS_URL: 'nats://10.0.0.1:4222',
      ...NATS,
    });
    expect(config).toMatchObject({ hostId: 'h1', reportIntervalMs: 2000, natsUrl: 'nats://10.0.0.1:4222', pools: [], criuPath: 'criu' });
  });

  it('serves metrics on the management address (else loopback), never on every address by default', () => {
    const withAddress = loadAgentConfig(file('m1.json', { hostId: 'h1', address: '10.250.0.11' }), NATS);
    expect(metricsHostOf(withAddress)).toBe('10.250.0.11');
    expect(metricsHostOf(loadAgentConfig(file('m2.json', { hostId: 'h1' }), NATS))).toBe('127.0.0.1');
    expect(metricsHostOf(loadAgentConfig(file('m3.json', { hostId: 'h1', address: '10.250.0.11' }), { ...NATS, FERRY_METRICS_HOST: '0.0.0.0' }))).toBe('0.0.0.0');
  });

  it('names every bad field and where it came from', () => {
    const path = file('bad.json', {
      hostId: 'h1',
      pools: [
        { id: 'p', path: '/a' },
        { id: 'p', path: 'b' },
      ],
      networks: [{ name: 'n', bridge: 'br0', subnet: '10.0.0.0/33' }],
    });
    try {
      loadAgentConfig(path, { FERRY_REPORT_INTERVAL_MS: 'soon' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems.join('\n');
      expect(problems).toContain(`pools.1.path: must be an absolute path (in ${path})`);
      expect(problems).toContain('networks.0.subnet');
      expect(problems).toContain('reportIntervalMs');
      expect(problems).toContain('from FERRY_REPORT_INTERVAL_MS');
    }
  });

  it('reports duplicate pool ids', () => {
    expect(() =>
      loadAgentConfig(
        file('dup.json', {
          hostId: 'h1',
          pools: [
            { id: 'p', path: '/a' },
            { id: 'p', path: '/b' },
          ],
        }),
        NATS,
      ),
    ).toThrow(/pools\.1\.id: duplicate pool id p/);
  });

  it('says when the file is not JSON or missing', () => {
    expect(() => loadAgentConfig(file('junk.json', '{nope'), {})).toThrow(/not valid JSON/);
    expect(() => loadAgentConfig(join(dir, 'absent.json'), {})).toThrow(/cannot read config file/);
  });
});
