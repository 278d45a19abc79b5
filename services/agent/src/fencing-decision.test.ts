import { describe, expect, it } from 'vitest';
import { fencingVerdict } from './fencing-decision.ts';

const base = { leaseValid: false, storageChannel: true, storageOk: true, declaredFailed: false };

describe('when a host fences (isolation is not failure)', () => {
  it('keeps running while a scheduler renews its lease', () => {
    expect(fencingVerdict({ ...base, leaseValid: true })).toEqual({ fence: false, why: 'lease-valid' });
  });
  it('keeps running when it lost only the control plane: its heartbeat still reaches storage', () => {
    expect(fencingVerdict(base)).toEqual({ fence: false, why: 'isolated' });
  });
  it('fences when it lost the control plane and storage: it may be declared failed', () => {
    expect(fencingVerdict({ ...base, storageOk: false })).toEqual({ fence: true, why: 'lease-and-storage-lost' });
  });
  it('fences on a lapsed lease when it has no second channel', () => {
    expect(fencingVerdict({ ...base, storageChannel: false, storageOk: false })).toEqual({ fence: true, why: 'lease-lapsed' });
  });
  it('fences when it reads that it was declared failed, whatever else holds', () => {
    expect(fencingVerdict({ ...base, leaseValid: true, declaredFailed: true })).toEqual({ fence: true, why: 'declared-failed' });
    expect(fencingVerdict({ ...base, declaredFailed: true })).toEqual({ fence: true, why: 'declared-failed' });
  });
});
