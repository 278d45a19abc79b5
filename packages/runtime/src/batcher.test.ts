import { describe, expect, it } from 'vitest';
import { Batcher } from './batcher.ts';

describe('Batcher', () => {
  it('decides the requests that arrive together as one batch, and later ones as the next', async () => {
    const batches: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const batcher = new Batcher<number, number>(async (items) => {
      batches.push(items);
      if (batches.length === 1) await gate;
      return items.map((n) => Promise.resolve(n * 10));
    });
    const first = [batcher.submit(1), batcher.submit(2)];
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const later = [batcher.submit(3), batcher.submit(4), batcher.submit(5)];
    release();
    expect(await Promise.all([...first, ...later])).toEqual([10, 20, 30, 40, 50]);
    expect(batches).toEqual([
      [1, 2],
      [3, 4, 5],
    ]);
  });

  it('splits at the largest batch', async () => {
    const sizes: number[] = [];
    const batcher = new Batcher<number, number>(async (items) => {
      sizes.push(items.length);
      return items.map((n) => Promise.resolve(n));
    }, 2);
    await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.submit(n)));
    expect(sizes).toEqual([2, 2, 1]);
  });

  it('fails one item alone, and every item of a batch whose decision throws', async () => {
    let calls = 0;
    const batcher = new Batcher<number, number>(async (items) => {
      if (++calls === 2) throw new Error('store down');
      return items.map((n) => (n === 2 ? Promise.reject(new Error('no room for 2')) : Promise.resolve(n)));
    });
    const results = await Promise.allSettled([batcher.submit(1), batcher.submit(2)]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
    await expect(Promise.all([batcher.submit(3), batcher.submit(4)])).rejects.toThrow('store down');
    expect(await batcher.submit(5)).toBe(5); // the batcher goes on after a failed batch
  });

  it('refuses an answer that does not match its batch', async () => {
    const batcher = new Batcher<number, number>(async () => []);
    await expect(batcher.submit(1)).rejects.toThrow('a batch of 1 was answered with 0 outcome(s)');
  });
});
