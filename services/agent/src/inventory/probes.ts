import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NAME_PATTERN, type PoolProbe } from '@ferry/protocol';
import type { PoolConfig } from '../config.ts';

const PROBE_DIR = '.ferry-probes';
const MAX_SEEN = 4096;

/**
 * Proves shared pools instead of trusting the config: this host writes a token into
 * `<pool>/.ferry-probes/<hostId>` and reports the tokens of the other hosts' files it can read.
 * The scheduler matches them up (sharedPoolProven). Refreshed at most every `everyMs`.
 */
export class PoolProbes {
  private readonly token = randomBytes(16).toString('hex');
  private readonly cache = new Map<string, { at: number; probe: PoolProbe }>();

  constructor(
    private readonly hostId: string,
    private readonly everyMs = 10_000,
  ) {}

  async probe(pool: PoolConfig): Promise<PoolProbe | undefined> {
    if (!pool.shared) return undefined;
    const cached = this.cache.get(pool.id);
    if (cached && Date.now() - cached.at < this.everyMs) return cached.probe;
    const dir = join(pool.path, PROBE_DIR);
    await mkdir(dir, { recursive: true });
    const mine = join(dir, this.hostId);
    if ((await readFile(mine, 'utf8').catch(() => '')) !== this.token) await writeFile(mine, this.token);
    const sees: PoolProbe['sees'] = [];
    for (const entry of (await readdir(dir)).sort()) {
      if (entry === this.hostId || !NAME_PATTERN.test(entry) || sees.length >= MAX_SEEN) continue;
      const token = (await readFile(join(dir, entry), 'utf8').catch(() => '')).trim().slice(0, 64);
      if (/^[a-f0-9]{16,64}$/.test(token)) sees.push({ hostId: entry, token });
    }
    const probe = { token: this.token, sees };
    this.cache.set(pool.id, { at: Date.now(), probe });
    return probe;
  }
}
