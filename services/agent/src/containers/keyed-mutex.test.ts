import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { KeyedMutex } from './keyed-mutex.ts';

describe('KeyedMutex', () => {
  it('runs tasks of one key in order and other keys alongside, surviving failures', async () => {
    const mutex = new KeyedMutex();
    const log: string[] = [];
    const task =
      (name: string, ms: number, fail = false) =>
      async () => {
        log.push(`${name}+`);
        await sleep(ms);
        log.push(`${name}-`);
        if (fail) throw new Error(name);
        return name;
      };
    const results = await Promise.allSettled([mutex.run('a', task('a1', 30, true)), mutex.run('a', task('a2', 5)), mutex.run('b', task('b1', 5))]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
    expect(log.indexOf('a2+')).toBeGreaterThan(log.indexOf('a1-'));
    expect(log.indexOf('b1+')).toBeLessThan(log.indexOf('a1-'));
  });

  it('says which keys have work running or waiting', async () => {
    const mutex = new KeyedMutex();
    expect(mutex.busy('a')).toBe(false);
    const done = mutex.run('a', () => sleep(10));
    expect(mutex.busy('a')).toBe(true);
    expect(mutex.busy('b')).toBe(false);
    await done;
    await sleep(0);
    expect(mutex.busy('a')).toBe(false);
  });
});
