import type { CapacityRejection } from '@ferry/protocol';

/** Counts of accepted and rejected capacity reports since the last flush. */
export class CapacityCounters {
  private pending = new Map<string, number>();

  accepted(): void {
    this.bump('accepted');
  }

  rejected(reason: CapacityRejection): void {
    this.bump(`rejected:${reason}`);
  }

  private bump(key: string): void {
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
  }

  /** Returns and clears what accumulated, for one batched write to Redis. */
  take(): Map<string, number> {
    const taken = this.pending;
    this.pending = new Map();
    return taken;
  }

  /** Puts back counts whose write failed, so none are lost. */
  restore(counts: Map<string, number>): void {
    for (const [key, count] of counts) this.pending.set(key, (this.pending.get(key) ?? 0) + count);
  }
}
