import { describe, expect, it } from 'vitest';
import type { WorkloadRecord } from '@ferry/protocol';
import { ApiError } from './errors.ts';
import { operableHost } from './operate.ts';

const record = (patch: Partial<WorkloadRecord>) => ({ spec: { id: 'w1' }, hostId: 'h1', phase: 'running', migratingTo: null, ...patch }) as WorkloadRecord;
const refusal = (r: WorkloadRecord) => {
  try {
    operableHost(r);
  } catch (err) {
    return { status: (err as ApiError).status, message: (err as ApiError).message };
  }
  return null;
};

describe('which host may run a command in a workload', () => {
  it('its current host while it runs there; a 409 saying why otherwise', () => {
    expect(operableHost(record({}))).toBe('h1');
    expect(refusal(record({ migratingTo: 'h2', phase: 'migrating' }))).toEqual({ status: 409, message: 'w1 is migrating to h2; try again when it has arrived' });
    expect(refusal(record({ phase: 'stopped' }))).toEqual({ status: 409, message: 'w1 is not running (phase stopped); start it first' });
    expect(refusal(record({ hostId: null, phase: 'pending' }))).toEqual({ status: 409, message: 'w1 is not running (phase pending); start it first' });
  });
});
