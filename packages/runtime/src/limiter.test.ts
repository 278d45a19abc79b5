import { describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLimiter } from './limiter.ts';

describe('createLimiter', () => {
  it('runs at most n at once, starts the rest in the order they came, and survives failures', async () => {
    const limit = createLimiter(2);
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const results = await Promise.allSettled(
      [0, 1, 2, 3, 4, 5].map((i) =>
        limit(async () => {
          started.push(i);
          running++;
          peak = Math.max(peak, running);
          await sleep(i === 0 ? 30 : 5);
          running--;
          if (i === 3) throw new Error('boom');
          return i;
        }),
      ),
    );
    expect(peak).toBe(2);
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
  });

  it('refuses a size that is not a positive whole number', () => {
    expect(() => createLimiter(0)).toThrow(/positive whole number/);
  });
});
