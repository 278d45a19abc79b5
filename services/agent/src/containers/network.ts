import { createHash } from 'node:crypto';
import { execa } from 'execa';
import { macForAddress, parseCidr } from '@ferry/core';
import type { NetworkAttachment, NetworkReport } from '@ferry/protocol';
import { antispoofInstall, removeAntispoof } from './antispoof.ts';
import { hostGuardInstall } from './host-guard.ts';
import { runNft } from './nft.ts';

export interface LinkPlan {
  /** veth end on the host, enslaved to the network's bridge */
  hostIf: string;
  /** veth end inside the container */
  containerIf: string;
  bridge: string;
  /** address/prefix */
  cidr: string;
  mac: string;
}

export interface NetworkPlan {
  netns: string;
  links: LinkPlan[];
}

/** Host-side interface names must fit in 15 characters and be unique per netns and network. */
export const hostInterfaceName = (netns: string, index: number): string => `fv${createHash('sha256').update(`${netns}:${index}`).digest('hex').slice(0, 10)}`;

/** Pure: which links a container gets for its attachments on this host's networks. */
export function planNetwork(netns: string, attachments: NetworkAttachment[], networks: NetworkReport[]): NetworkPlan {
  const links = attachments.map((attachment, index) => {
    const network = networks.find((n) => n.name === attachment.network);
    if (!network) throw new Error(`host is not attached to network ${attachment.network}`);
    return {
      hostIf: hostInterfaceName(netns, index),
      containerIf: `eth${index}`,
      bridge: network.bridge,
      cidr: `${attachment.address}/${parseCidr(network.subnet).prefix}`,
      mac: macForAddress(attachment.address),
    };
  });
  return { netns, links };
}

const ip = (args: string[]) => execa('ip', args, { timeout: 30_000 });

/**
 * Builds the container's network namespace: loopback up, IPv4 only (no IPv6 chatter, so a
 * migration's destination namespace stays silent until its workload runs), one veth per network,
 * bridged on the host side before the address comes up inside (so the first ARP is not lost),
 * fixed MAC. The tenant isolation rules (antispoof.ts, host-guard.ts) are in place before the
 * first frame can leave. `hostSideUp: false` leaves the host ends down (a migration's destination,
 * until the restore). On any failure it removes what it built.
 */
export async function setUpNetwork(plan: NetworkPlan, options: { hostSideUp?: boolean } = {}): Promise<void> {
  await ip(['netns', 'add', plan.netns]);
  try {
    // One nft transaction: the container's anti-spoofing chain and the host guard for its bridges.
    await runNft([...hostGuardInstall([...new Set(plan.links.map((l) => l.bridge))]), ...antispoofInstall(plan)]);
    // IPv6 off before any interface is in the namespace (none ever gets a link-local address).
    // ping without CAP_NET_RAW: ICMP datagram sockets for every group.
    await execa('ip', ['netns', 'exec', plan.netns, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1', 'net.ipv4.ping_group_range=0 2147483647'], {
      timeout: 30_000,
    });
    // Two `ip -batch` runs instead of five commands per network: a failover starts dozens of
    // containers at once, and every process spawned costs CPU the restarts are waiting for.
    await ipBatch(
      null,
      plan.links.flatMap((link) => [
        ['link', 'add', link.hostIf, 'type', 'veth', 'peer', 'name', link.containerIf, 'netns', plan.netns],
        ['link', 'set', link.hostIf, 'master', link.bridge, ...(options.hostSideUp === false ? [] : ['up'])],
      ]),
    );
    await ipBatch(plan.netns, [
      ['link', 'set', 'lo', 'up'],
      ...plan.links.flatMap((link) => [
        ['link', 'set', link.containerIf, 'address', link.mac],
        ['addr', 'add', link.cidr, 'dev', link.containerIf],
        ['link', 'set', link.containerIf, 'up'],
      ]),
    ]);
  } catch (err) {
    await tearDownNetwork(plan.netns);
    throw err;
  }
}

/**
 * Runs ip commands as one `ip -batch -` (in `netns` when given). The batch is text, so every word
 * must be a plain token (names, addresses, keywords): anything else is refused, never quoted.
 */
export async function ipBatch(netns: string | null, commands: string[][]): Promise<void> {
  if (commands.length === 0) return;
  for (const word of commands.flat()) {
    if (!/^[A-Za-z0-9_.:/@-]+$/.test(word)) throw new Error(`refusing ip batch word ${JSON.stringify(word)}`);
  }
  await execa('ip', [...(netns ? ['-n', netns] : []), '-batch', '-'], { input: `${commands.map((c) => c.join(' ')).join('\n')}\n`, timeout: 30_000 });
}

/** Removes the namespace (its veth pairs go with it) and its anti-spoofing rules. Missing is fine (idempotent). */
export async function tearDownNetwork(netns: string): Promise<void> {
  const result = await execa('ip', ['netns', 'del', netns], { reject: false, timeout: 30_000 });
  await removeAntispoof(netns);
  if (result.exitCode !== 0 && !/No such file/.test(result.stderr)) {
    throw new Error(`ip netns del ${netns}: ${result.stderr.trim()}`);
  }
}

/** Whether an interface (a network's bridge) exists in this host's network namespace. */
export async function interfaceExists(name: string): Promise<boolean> {
  const result = await execa('ip', ['link', 'show', 'dev', name], { reject: false, timeout: 10_000 });
  return result.exitCode === 0;
}

/** Brings the host ends of a container's veths up or down (a migration hands the address over). */
export async function setHostSide(plan: NetworkPlan, up: boolean): Promise<void> {
  for (const link of plan.links) await ip(['link', 'set', link.hostIf, up ? 'up' : 'down']);
}

/**
 * Gratuitous ARP from inside the container's namespace for each of its addresses: every bridge
 * and neighbour learns at once where the MAC is now. Not awaited by callers on the freeze path.
 */
export async function announce(plan: NetworkPlan): Promise<void> {
  await Promise.all(
    plan.links.map((link) =>
      execa('nsenter', [`--net=/run/netns/${plan.netns}`, '--', 'busybox', 'arping', '-U', '-c', '1', '-w', '1', '-I', link.containerIf, link.cidr.split('/')[0]!], {
        reject: false,
        timeout: 5_000,
      }),
    ),
  );
}

/** Removes CRIU's network-lock tables left in a namespace (a failed or abandoned dump). */
export async function removeCriuLocks(netns: string): Promise<number> {
  const list = await execa('nsenter', [`--net=/run/netns/${netns}`, '--', 'nft', 'list', 'tables'], { reject: false, timeout: 10_000 });
  const tables = list.stdout
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((parts) => parts[0] === 'table' && parts[2]?.startsWith('CRIU'));
  for (const [, family, name] of tables) {
    await execa('nsenter', [`--net=/run/netns/${netns}`, '--', 'nft', 'delete', 'table', family!, name!], { reject: false, timeout: 10_000 });
  }
  return tables.length;
}
