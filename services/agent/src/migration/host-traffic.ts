import { execa } from 'execa';
import { z } from 'zod';

const Links = z.array(z.object({ ifname: z.string(), stats64: z.object({ tx: z.object({ bytes: z.number() }) }).optional() }));
const Addrs = z.array(z.object({ ifname: z.string(), addr_info: z.array(z.object({ local: z.string() })) }));

/**
 * Bytes this host has sent on the interface that holds its transfer address: what a migration
 * puts on the link, read before and after each transfer (netlink, so it works from the agent's
 * network namespace whatever /sys shows).
 */
export class LinkCounter {
  private ifname: string | null = null;

  constructor(private readonly address: string | null) {}

  async txBytes(): Promise<number> {
    if (!this.address) return 0;
    if (!this.ifname) {
      const addrs = Addrs.parse(JSON.parse((await execa('ip', ['-j', '-4', 'addr', 'show'], { timeout: 10_000 })).stdout));
      this.ifname = addrs.find((a) => a.addr_info.some((i) => i.local === this.address))?.ifname ?? null;
      if (!this.ifname) return 0;
    }
    const links = Links.parse(JSON.parse((await execa('ip', ['-j', '-s', 'link', 'show', 'dev', this.ifname], { timeout: 10_000 })).stdout));
    return links[0]?.stats64?.tx.bytes ?? 0;
  }
}
