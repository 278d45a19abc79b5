import { runNft, type NftCommand } from './nft.ts';

/**
 * The host is no service to its tenants: nothing that arrives on a tenant network's bridge may
 * open a connection to the host itself (its address on that bridge, or — the weak host model
 * accepts any local address on any interface — its management address, where the agent's
 * metrics, rsync and page servers listen), nor be routed through the host to another network
 * (the management network: NATS, Redis, other hosts' agents). Replies to connections the host
 * opened (a health check, an operator's probe) still come back: only `ct state new` is dropped.
 * Traffic between containers on the bridge is bridged, not routed, and never passes here.
 *
 * This assumes what Ferry's networks are: tenant-only bridges, with the management network on
 * another interface (as in the lab). A host whose own uplink is a tenant bridge would stop
 * accepting connections on it.
 */
export const TABLE = 'ferry_host_guard';
const T = ['inet', TABLE];

/** The transaction that (re)installs the guard for these bridges (the set only grows; installing twice never doubles a rule). */
export function hostGuardInstall(bridges: string[]): NftCommand[] {
  if (bridges.length === 0) return [];
  return [
    ['add', 'table', ...T],
    ['add', 'set', ...T, 'tenant_bridges', '{', 'type', 'ifname', ';', '}'],
    ['add', 'chain', ...T, 'input', '{', 'type', 'filter', 'hook', 'input', 'priority', 'filter', ';', 'policy', 'accept', ';', '}'],
    ['flush', 'chain', ...T, 'input'],
    ['add', 'rule', ...T, 'input', 'iifname', '@tenant_bridges', 'ct', 'state', 'new', 'counter', 'drop'],
    ['add', 'chain', ...T, 'forward', '{', 'type', 'filter', 'hook', 'forward', 'priority', 'filter', ';', 'policy', 'accept', ';', '}'],
    ['flush', 'chain', ...T, 'forward'],
    ['add', 'rule', ...T, 'forward', 'iifname', '@tenant_bridges', 'oifname', '!=', '@tenant_bridges', 'counter', 'drop'],
    ['add', 'element', ...T, 'tenant_bridges', '{', ...bridges.flatMap((b, i) => (i === 0 ? [`"${b}"`] : [',', `"${b}"`])), '}'],
  ];
}

/** Installs the guard for these bridges on this host. */
export async function installHostGuard(bridges: string[]): Promise<void> {
  await runNft(hostGuardInstall(bridges));
}
