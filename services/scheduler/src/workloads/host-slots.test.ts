import { describe, expect, it } from 'vitest';
import { HostSlots } from './host-slots.ts';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('HostSlots', () => {
  it('lets at most perHost commands run on one host, the others in order, other hosts unaffected', async () => {
    const slots = new HostSlots(2);
    const started: string[] = [];
    const finish = new Map<string, () => void>();
    const command = (host: string, name: string) =>
      slots.run(host, () => {
        started.push(name);
        return new Promise<string>((resolve) => finish.set(name, () => resolve(name)));
      });
    const results = [command('h1', 'a'), command('h1', 'b'), command('h1', 'c'), command('h1', 'd'), command('h2', 'x')];
    await tick();
    expect(started).toEqual(['a', 'b', 'x']);
    expect(slots.inFlight('h1')).toBe(2);
    finish.get('b')!();
    await tick();
    expect(started).toEqual(['a', 'b', 'x', 'c']);
    expect(slots.inFlight('h1')).toBe(2);
    for (const name of ['a', 'c', 'x']) finish.get(name)!();
    await tick();
    expect(started).toEqual(['a', 'b', 'x', 'c', 'd']);
    finish.get('d')!();
    expect(await Promise.all(results)).toEqual(['a', 'b', 'c', 'd', 'x']);
    expect(slots.inFlight('h1')).toBe(0);
    expect(slots.inFlight('h2')).toBe(0);
  });

  it('frees the slot of a command that failed', async () => {
    const slots = new HostSlots(1);
    await expect(slots.run('h1', () => Promise.reject(new Error('agent down')))).rejects.toThrow('agent down');
    expect(await slots.run('h1', () => Promise.resolve('next'))).toBe('next');
    expect(slots.inFlight('h1')).toBe(0);
  });

  it('refuses a limit that is not a positive integer', () => {
    expect(() => new HostSlots(0)).toThrow('positive integer');
  });
});
