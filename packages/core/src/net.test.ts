import { describe, expect, it } from 'vitest';
import { intToIpv4, ipv4ToInt, isIpv4, isReservedInSubnet, macForAddress, parseCidr, subnetContains } from './net.ts';

describe('IPv4 helpers', () => {
  it('round-trips addresses', () => {
    expect(ipv4ToInt('10.77.0.5')).toBe(0x0a4d0005);
    expect(intToIpv4(0xffffffff)).toBe('255.255.255.255');
    expect(() => ipv4ToInt('10.0.0.256')).toThrow();
    expect(() => ipv4ToInt('10.0.0')).toThrow();
    expect(isIpv4('10.0.0.255')).toBe(true);
    expect(isIpv4('999.1.1.1')).toBe(false);
    expect(isIpv4('10.0.0')).toBe(false);
  });

  it('knows what a subnet holds', () => {
    const subnet = parseCidr('10.77.0.254/24');
    expect(intToIpv4(subnet.network)).toBe('10.77.0.0');
    expect(subnetContains(subnet, '10.77.0.5')).toBe(true);
    expect(subnetContains(subnet, '10.77.1.5')).toBe(false);
    expect(isReservedInSubnet(subnet, '10.77.0.0')).toBe(true);
    expect(isReservedInSubnet(subnet, '10.77.0.255')).toBe(true);
    expect(isReservedInSubnet(subnet, '10.77.0.1')).toBe(false);
    expect(isReservedInSubnet(parseCidr('10.0.0.0/31'), '10.0.0.0')).toBe(false);
  });

  it('derives one stable, locally administered MAC per address', () => {
    expect(macForAddress('10.77.0.5')).toBe('02:fe:0a:4d:00:05');
    expect(macForAddress('192.168.255.1')).toBe('02:fe:c0:a8:ff:01');
  });
});
