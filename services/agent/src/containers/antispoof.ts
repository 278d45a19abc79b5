import { z } from 'zod';
import { listNftJson, runNft, type NftCommand } from './nft.ts';
import type { NetworkPlan } from './network.ts';

/**
 * Anti-spoofing on the bridge, as OpenVZ's venet guaranteed: a container's frames enter the
 * network's bridge only from its own MAC, and only as IPv4 or ARP from its own address. Checked
 * where the frame enters the bridge (the bridge family's prerouting hook, before the bridge
 * learns the source MAC), per host-side veth — so nothing inside the container, not even one
 * with CAP_NET_RAW or CAP_NET_ADMIN, can answer ARP for another tenant's address, send as it,
 * or make the bridge learn another tenant's MAC on its port.
 *
 * One table per host (`bridge ferry_antispoof`): a verdict map from host-side interface to the
 * container's chain, one chain per container named after its network namespace. Installing and
 * removing are single nft transactions, idempotent.
 */
export const TABLE = 'ferry_antispoof';
const T = ['bridge', TABLE];

const chainOf = (netns: string): string => `c-${netns}`;

const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** The transaction that (re)installs a container's rules: table, map and base chain ensured, its chain rebuilt, its ports mapped. */
export function antispoofInstall(plan: NetworkPlan): NftCommand[] {
  if (plan.links.length === 0) return []; // loopback only: no port to guard
  const chain = chainOf(plan.netns);
  const rules: NftCommand[] = [];
  for (const link of plan.links) {
    const address = link.cidr.split('/')[0]!;
    if (!IPV4.test(address)) throw new Error(`anti-spoofing: ${JSON.stringify(address)} is not an IPv4 address`);
    if (!MAC.test(link.mac)) throw new Error(`anti-spoofing: ${JSON.stringify(link.mac)} is not a MAC address`);
    const port = ['iifname', `"${link.hostIf}"`];
    rules.push(
      ['add', 'rule', ...T, chain, ...port, 'ether', 'saddr', '!=', link.mac, 'counter', 'drop'],
      ['add', 'rule', ...T, chain, ...port, 'arp', 'saddr', 'ether', '!=', link.mac, 'counter', 'drop'],
      ['add', 'rule', ...T, chain, ...port, 'arp', 'saddr', 'ip', '!=', address, 'counter', 'drop'],
      ['add', 'rule', ...T, chain, ...port, 'ip', 'saddr', '!=', address, 'counter', 'drop'],
      ['add', 'rule', ...T, chain, ...port, 'ether', 'type', '{', 'ip', ',', 'arp', '}', 'accept'],
    );
  }
  return [
    ['add', 'table', ...T],
    ['add', 'map', ...T, 'ports', '{', 'type', 'ifname', ':', 'verdict', ';', '}'],
    // the base chain holds one rule; flushed and written again, so installing twice never doubles it
    ['add', 'chain', ...T, 'prerouting', '{', 'type', 'filter', 'hook', 'prerouting', 'priority', '-200', ';', 'policy', 'accept', ';', '}'],
    ['flush', 'chain', ...T, 'prerouting'],
    ['add', 'rule', ...T, 'prerouting', 'iifname', 'vmap', '@ports'],
    ['add', 'chain', ...T, chain],
    ['flush', 'chain', ...T, chain],
    ...rules,
    // anything else from the port (IPv6, VLAN tags, other ethertypes): dropped
    ['add', 'rule', ...T, chain, 'counter', 'drop'],
    ...plan.links.map((link): NftCommand => ['add', 'element', ...T, 'ports', '{', `"${link.hostIf}"`, ':', 'jump', chain, '}']),
  ];
}

const MapListing = z.array(z.object({ map: z.object({ elem: z.array(z.tuple([z.string(), z.object({ jump: z.object({ target: z.string() }) })])).optional() }).optional() }));

/** The ports (map keys) that jump to a container's chain, from `nft -j list map`'s output. */
export function portsOfChain(listing: unknown[], netns: string): string[] {
  const chain = chainOf(netns);
  return MapListing.parse(listing)
    .flatMap((item) => item.map?.elem ?? [])
    .filter(([, verdict]) => verdict.jump.target === chain)
    .map(([port]) => port);
}

/** The transaction that removes a container's ports and chain. */
export function antispoofRemove(netns: string, ports: string[]): NftCommand[] {
  return [...ports.map((port): NftCommand => ['delete', 'element', ...T, 'ports', '{', `"${port}"`, '}']), ['delete', 'chain', ...T, chainOf(netns)]];
}

/** Installs (or refreshes) a container's anti-spoofing rules on this host. */
export async function installAntispoof(plan: NetworkPlan): Promise<void> {
  await runNft(antispoofInstall(plan));
}

/**
 * Removes a container's rules; nothing there is fine (idempotent). Its chain exists exactly when
 * its ports are in the map (both come and go in one transaction), so the map says what to remove.
 */
export async function removeAntispoof(netns: string): Promise<void> {
  const listing = await listNftJson(['map', ...T, 'ports']);
  const ports = listing === null ? [] : portsOfChain(listing, netns);
  if (ports.length > 0) await runNft(antispoofRemove(netns, ports));
}
