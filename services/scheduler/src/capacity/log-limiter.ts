const OVERFLOW_KEY = '(many keys)';

/**
 * Allows one event per key per window (e.g. one "rejected report" log line per host per minute).
 * Memory stays bounded even when a hostile sender invents a new key for every message: past
 * `maxKeys` recent keys, new keys share one overflow key.
 */
export class PerKeyLimiter {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys = 10_000,
  ) {}

  allow(key: string, now: number): boolean {
    if (!this.last.has(key) && this.last.size >= this.maxKeys) {
      this.prune(now);
      if (this.last.size >= this.maxKeys) key = OVERFLOW_KEY;
    }
    const previous = this.last.get(key);
    if (previous !== undefined && now - previous < this.windowMs) return false;
    this.last.set(key, now);
    return true;
  }

  private prune(now: number): void {
    for (const [key, at] of this.last) if (now - at >= this.windowMs) this.last.delete(key);
  }
}
