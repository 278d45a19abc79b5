/** IPv4 arithmetic on unsigned 32-bit integers. */

export function ipv4ToInt(address: string): number {
  const parts = address.split('.');
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${address}`);
  let value = 0;
  for (const part of parts) {
    const octet = Number(part);
    if (!/^\d{1,3}$/.test(part) || octet > 255) throw new Error(`not an IPv4 address: ${address}`);
    value = value * 256 + octet;
  }
  return value;
}

/** Whether `address` is a dotted-quad IPv4 address with every octet 0–255 (what ipv4ToInt takes). */
export function isIpv4(address: string): boolean {
  try {
    ipv4ToInt(address);
    return true;
  } catch {
    return false;
  }
}

export function intToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

export interface Subnet {
  network: number;
  prefix: number;
  /** number of addresses */
  size: number;
}

/** "10.77.0.0/24" (or "10.77.0.254/24": host bits are masked off). */
export function parseCidr(cidr: string): Subnet {
  const [address, prefixText] = cidr.split('/');
  const prefix = Number(prefixText);
  if (!address || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const size = 2 ** (32 - prefix);
  const network = Math.floor(ipv4ToInt(address) / size) * size;
  return { network, prefix, size };
}

export function subnetContains(subnet: Subnet, address: string): boolean {
  const value = ipv4ToInt(address);
  return value >= subnet.network && value < subnet.network + subnet.size;
}

/** The network and broadcast addresses of subnets that have them (not /31 or /32). */
export function isReservedInSubnet(subnet: Subnet, address: string): boolean {
  if (subnet.prefix >= 31) return false;
  const value = ipv4ToInt(address);
  return value === subnet.network || value === subnet.network + subnet.size - 1;
}

/**
 * The MAC a workload uses for an address: locally administered, unicast (02:fe) plus the four
 * address bytes, so the same address gets the same MAC on every host and ARP caches stay right
 * across a migration.
 */
export function macForAddress(address: string): string {
  const value = ipv4ToInt(address);
  const bytes = [0x02, 0xfe, ...[24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256)];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
