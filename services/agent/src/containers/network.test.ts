import { describe, expect, it } from 'vitest';
import { hostInterfaceName, planNetwork } from './network.ts';

describe('container network plan', () => {
  const networks = [
    { name: 'prod', bridge: 'fbr-prod', subnet: '10.77.0.0/24' },
    { name: 'backup', bridge: 'fbr-bk', subnet: '10.88.0.0/16' },
  ];

  it('gives each attachment a veth pair, the network prefix and the address-derived MAC', () => {
    const plan = planNetwork(
      'fc-web-1-0a0b0c0d',
      [
        { network: 'prod', address: '10.77.0.5' },
        { network: 'backup', address: '10.88.3.4' },
      ],
      networks,
    );
    expect(plan.links).toEqual([
      { hostIf: hostInterfaceName('fc-web-1-0a0b0c0d', 0), containerIf: 'eth0', bridge: 'fbr-prod', cidr: '10.77.0.5/24', mac: '02:fe:0a:4d:00:05' },
      { hostIf: hostInterfaceName('fc-web-1-0a0b0c0d', 1), containerIf: 'eth1', bridge: 'fbr-bk', cidr: '10.88.3.4/16', mac: '02:fe:0a:58:03:04' },
    ]);
    for (const link of plan.links) expect(link.hostIf.length).toBeLessThanOrEqual(15);
    expect(plan.links[0]!.hostIf).not.toBe(plan.links[1]!.hostIf);
  });

  it('refuses a network the host is not attached to', () => {
    expect(() => planNetwork('fc-x', [{ network: 'dmz', address: '10.9.9.9' }], networks)).toThrow(/not attached to network dmz/);
  });
});

describe('ipBatch', () => {
  it('refuses a word that could smuggle another command into the batch, before running anything', async () => {
    const { ipBatch } = await import('./network.ts');
    await expect(ipBatch(null, [['link', 'set', 'x\nnetns del y', 'up']])).rejects.toThrow(/refusing ip batch word/);
    await expect(ipBatch(null, [['link', 'set', 'a b', 'up']])).rejects.toThrow(/refusing ip batch word/);
  });
});
