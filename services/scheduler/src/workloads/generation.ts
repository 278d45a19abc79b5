import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Logger } from '@ferry/runtime';
import type { ClusterStore } from '@ferry/store';
import type { GenerationView } from './reconcile-decision.ts';

const Generation = z.object({ id: z.string().min(1).max(64), since: z.number().int().nonnegative() });

/**
 * The cluster generation: a marker written once in Redis (`<prefix>:cluster:generation`, SET NX)
 * by the first scheduler that finds it missing — on a new cluster, or after Redis lost its data
 * (restarted without persistence, flushed, replaced). Agents keep the generation that last
 * confirmed each copy next to its record (`container.stamp`), so a copy stamped with another
 * generation and without a record is the survivor of a loss, not a deleted workload's copy.
 * Read at most once per `refreshMs`, so a loss while the scheduler runs is noticed within it.
 */
export class ClusterGeneration {
  private cached: { value: GenerationView; at: number } | null = null;
  private reading: Promise<GenerationView> | null = null;

  constructor(
    private readonly store: ClusterStore,
    private readonly log: Logger,
    private readonly refreshMs = 1000,
  ) {}

  async current(): Promise<GenerationView> {
    if (this.cached && Date.now() - this.cached.at < this.refreshMs) return this.cached.value;
    this.reading ??= this.read().finally(() => {
      this.reading = null;
    });
    return this.reading;
  }

  private async read(): Promise<GenerationView> {
    const key = this.store.keys.generation;
    let raw = await this.store.redis.get(key);
    if (raw === null) {
      const fresh: GenerationView = { id: `g-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`, since: Date.now() };
      const set = await this.store.redis.set(key, JSON.stringify(fresh), 'NX');
      if (set === 'OK') {
        this.log.warn(
          { generation: fresh.id, previous: this.cached?.value.id ?? null },
          'no cluster generation in Redis (a new cluster, or Redis lost its data): starting a new one; copies hosts report from an earlier one are rebuilt into workload records',
        );
      }
      raw = (await this.store.redis.get(key)) ?? JSON.stringify(fresh);
    }
    const parsed = Generation.safeParse(JSON.parse(raw));
    if (!parsed.success) throw new Error(`malformed cluster generation in ${key}: ${raw}`);
    if (this.cached && this.cached.value.id !== parsed.data.id) this.log.warn({ from: this.cached.value.id, to: parsed.data.id }, 'the cluster generation changed');
    this.cached = { value: parsed.data, at: Date.now() };
    return parsed.data;
  }
}
