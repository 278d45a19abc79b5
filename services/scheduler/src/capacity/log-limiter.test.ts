import { describe, expect, it } from 'vitest';
import { PerKeyLimiter } from './log-limiter.ts';

describe('PerKeyLimiter', () => {
  it('allows one event per key per window', () => {
    const limiter = new PerKeyLimiter(60_000);
    expect(limiter.allow('a', 0)).toBe(true);
    expect(limiter.allow('a', 59_999)).toBe(false);
    expect(limiter.allow('b', 10)).toBe(true);
    expect(limiter.allow('a', 60_000)).toBe(true);
  });

  it('stays bounded when every event has a new key', () => {
    const limiter = new PerKeyLimiter(60_000, 100);
    let allowed = 0;
    for (let i = 0; i < 10_000; i++) if (limiter.allow(`k${i}`, 1000)) allowed++;
    // 100 distinct keys, then the flood shares one key: one more line, not 9,900.
    expect(allowed).toBe(101);
    // Once the window passed, old keys are pruned and new ones are logged again.
    expect(limiter.allow('fresh', 70_000)).toBe(true);
  });
});
