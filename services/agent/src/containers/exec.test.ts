import { describe, expect, it } from 'vitest';
import { CappedBuffer, requireOperable, type OperableContainers } from './exec.ts';
import type { ContainerRecord } from './records.ts';
import type { Runc } from './runc.ts';

const copy = (patch: Partial<ContainerRecord> = {}) => ({ spec: { id: 'w1' }, epoch: 3, state: 'running', ...patch }) as ContainerRecord;
const host = (record: ContainerRecord | undefined): OperableContainers => ({ record: (id) => (record?.spec.id === id ? record : undefined), runc: null as unknown as Runc });

describe('exec on the agent', () => {
  it('keeps the first bytes of an output and says it cut the rest (split inside a chunk or between chunks)', () => {
    const out = new CappedBuffer(10);
    out.push(Buffer.from('hello '));
    expect(out.truncated).toBe(false);
    out.push(Buffer.from('world!'));
    out.push(Buffer.from('more'));
    expect(out.text()).toBe('hello worl');
    expect(out.truncated).toBe(true);
    const exact = new CappedBuffer(5);
    exact.push(Buffer.from('12345'));
    expect([exact.text(), exact.truncated]).toEqual(['12345', false]);
  });

  it('runs only in this host’s running copy of the epoch the API names', () => {
    expect(requireOperable(host(copy()), 'w1', 3).epoch).toBe(3);
    expect(() => requireOperable(host(undefined), 'w1', 3)).toThrow('no container w1 on this host');
    expect(() => requireOperable(host(copy({ epoch: 2 })), 'w1', 3)).toThrow("the copy of w1 here is epoch 2, not 3: not the workload's current copy");
    expect(() => requireOperable(host(copy({ state: 'migrating' })), 'w1', 3)).toThrow('w1 is migrating here, not running');
    expect(() => requireOperable(host(copy({ state: 'frozen' })), 'w1', 3)).toThrow('w1 is frozen here, not running');
  });
});
