import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { antispoofInstall, antispoofRemove, portsOfChain } from './antispoof.ts';
import { hostGuardInstall } from './host-guard.ts';
import { nftBatch } from './nft.ts';
import { planNetwork } from './network.ts';

const networks = [
  { name: 'prod', bridge: 'fbr-prod', subnet: '10.77.0.0/24' },
  { name: 'backup', bridge: 'fbr-bk', subnet: '10.88.0.0/16' },
];
const plan = planNetwork(
  'fc-web-1-0a0b0c0d',
  [
    { network: 'prod', address: '10.77.0.5' },
    { network: 'backup', address: '10.88.3.4' },
  ],
  networks,
);
const lines = (commands: string[][]) => nftBatch(commands).trim().split('\n');
const canCheck = process.getuid?.() === 0 && (await execa('nft', ['--version'], { reject: false })).exitCode === 0;
// CI runs as root with nftables installed (deploy/setup): there the check must run, never skip
if (!canCheck && process.env.CI) throw new Error('the nft --check test cannot run in CI: not root, or nft is missing (deploy/setup installs nftables)');

describe('anti-spoofing rules', () => {
  const script = lines(antispoofInstall(plan));
  const [eth0, eth1] = plan.links;

  it('lets each port send only from its own MAC, and only IPv4 and ARP from its own address', () => {
    const chain = script.filter((l) => l.startsWith('add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d '));
    expect(chain).toEqual([
      `add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d iifname "${eth0!.hostIf}" ether saddr != 02:fe:0a:4d:00:05 counter drop`,
      `add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d iifname "${eth0!.hostIf}" arp saddr ether != 02:fe:0a:4d:00:05 counter drop`,
      `add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d iifname "${eth0!.hostIf}" arp saddr ip != 10.77.0.5 counter drop`,
      `add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d iifname "${eth0!.hostIf}" ip saddr != 10.77.0.5 counter drop`,
      `add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d iifname "${eth0!.hostIf}" ether type { ip , arp } accept`,
      `add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d iifname "${eth1!.hostIf}" ether saddr != 02:fe:0a:58:03:04 counter drop`,
      `add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d iifname "${eth1!.hostIf}" arp saddr ether != 02:fe:0a:58:03:04 counter drop`,
      `add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d iifname "${eth1!.hostIf}" arp saddr ip != 10.88.3.4 counter drop`,
      `add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d iifname "${eth1!.hostIf}" ip saddr != 10.88.3.4 counter drop`,
      `add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d iifname "${eth1!.hostIf}" ether type { ip , arp } accept`,
      // anything else (IPv6, VLAN-tagged, other ethertypes)
      'add rule bridge ferry_antispoof c-fc-web-1-0a0b0c0d counter drop',
    ]);
    expect(script).toContain(`add element bridge ferry_antispoof ports { "${eth0!.hostIf}" : jump c-fc-web-1-0a0b0c0d }`);
    expect(script).toContain(`add element bridge ferry_antispoof ports { "${eth1!.hostIf}" : jump c-fc-web-1-0a0b0c0d }`);
  });

  it('filters before the bridge learns a MAC, and installing twice rebuilds rather than doubles', () => {
    expect(script).toContain('add chain bridge ferry_antispoof prerouting { type filter hook prerouting priority -200 ; policy accept ; }');
    const flushBase = script.indexOf('flush chain bridge ferry_antispoof prerouting');
    expect(flushBase).toBeGreaterThan(-1);
    expect(script.indexOf('add rule bridge ferry_antispoof prerouting iifname vmap @ports')).toBeGreaterThan(flushBase);
    expect(script.indexOf('flush chain bridge ferry_antispoof c-fc-web-1-0a0b0c0d')).toBeLessThan(script.findIndex((l) => l.startsWith('add rule bridge ferry_antispoof c-')));
  });

  it('guards nothing for a container without networks', () => {
    expect(antispoofInstall({ netns: 'fc-lo-1', links: [] })).toEqual([]);
  });

  it('refuses a link whose MAC or address is not one (before running anything)', () => {
    expect(() => antispoofInstall({ netns: 'n', links: [{ ...eth0!, mac: '02:fe:0a:4d:00:05 drop' }] })).toThrow(/not a MAC address/);
    expect(() => antispoofInstall({ netns: 'n', links: [{ ...eth0!, cidr: 'fe80::1/64' }] })).toThrow(/not an IPv4 address/);
  });

  it('removes exactly the ports that jump to the container’s chain, then the chain', () => {
    const listing = [
      { metainfo: { version: '1.0.6' } },
      {
        map: {
          family: 'bridge',
          name: 'ports',
          elem: [
            ['fvaaa', { jump: { target: 'c-fc-web-1-0a0b0c0d' } }],
            ['fvbbb', { jump: { target: 'c-fc-other-11111111' } }],
            ['fvccc', { jump: { target: 'c-fc-web-1-0a0b0c0d' } }],
          ],
        },
      },
    ];
    const ports = portsOfChain(listing, 'fc-web-1-0a0b0c0d');
    expect(ports).toEqual(['fvaaa', 'fvccc']);
    expect(portsOfChain([{ map: { name: 'ports' } }], 'fc-web-1-0a0b0c0d')).toEqual([]);
    expect(lines(antispoofRemove('fc-web-1-0a0b0c0d', ports))).toEqual([
      'delete element bridge ferry_antispoof ports { "fvaaa" }',
      'delete element bridge ferry_antispoof ports { "fvccc" }',
      'delete chain bridge ferry_antispoof c-fc-web-1-0a0b0c0d',
    ]);
  });

  it.skipIf(!canCheck)('is a transaction nft accepts (nft --check, nothing applied)', async () => {
    const all = nftBatch([...hostGuardInstall(['fbr-prod', 'fbr-bk']), ...antispoofInstall(plan)]);
    const check = await execa('nft', ['--check', '-f', '-'], { input: all, reject: false });
    expect(check.exitCode, check.stderr).toBe(0);
  });
});

describe('host guard', () => {
  it('drops new connections from tenant bridges to the host, and routing out of them, for every bridge once', () => {
    const script = lines(hostGuardInstall(['fbr-prod', 'fbr-bk']));
    expect(script).toContain('add rule inet ferry_host_guard input iifname @tenant_bridges ct state new counter drop');
    expect(script).toContain('add rule inet ferry_host_guard forward iifname @tenant_bridges oifname != @tenant_bridges counter drop');
    expect(script).toContain('add element inet ferry_host_guard tenant_bridges { "fbr-prod" , "fbr-bk" }');
    expect(script.indexOf('flush chain inet ferry_host_guard input')).toBeLessThan(script.indexOf('add rule inet ferry_host_guard input iifname @tenant_bridges ct state new counter drop'));
    expect(hostGuardInstall([])).toEqual([]);
  });
});
