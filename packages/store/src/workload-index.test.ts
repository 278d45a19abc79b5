import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanLookups } from '@ferry/core';
import { WorkloadSpec, type WorkloadRecord } from '@ferry/protocol';
import { sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { WorkloadIndex } from './workload-index.ts';

const record = (id: string, addresses: Array<[string, string]>): WorkloadRecord =>
  sampleWorkloadRecord(
    WorkloadSpec.parse({
      id,
      template: 'busybox',
      command: ['/bin/sh'],
      resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 },
      networks: addresses.map(([network, address]) => ({ network, address })),
      pool: 'local',
    }),
    'h1',
  );

/**
 * The create checks' lookups kept by following a copy's changes must answer what a scan of the
 * copy answers, after any sequence of writes, deletes and whole re-reads.
 */
describe('WorkloadIndex (lookups kept as the workloads change)', () => {
  const ids = ['a', 'b', 'c', 'd'];
  const addresses: Array<[string, string]> = [
    ['lan', '10.0.0.5'],
    ['lan', '10.0.0.6'],
    ['dmz', '10.0.0.5'],
  ];
  const step = fc.oneof(
    fc.record({ kind: fc.constant('put' as const), id: fc.constantFrom(...ids), held: fc.subarray([0, 1, 2]) }),
    fc.record({ kind: fc.constant('delete' as const), id: fc.constantFrom(...ids) }),
    fc.record({ kind: fc.constant('reread' as const) }),
  );

  it('answers what a scan of the same records answers', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 30 }), (steps) => {
        const records = new Map<string, WorkloadRecord>();
        const index = new WorkloadIndex();
        for (const s of steps) {
          if (s.kind === 'put') {
            const next = record(
              s.id,
              s.held.map((k) => addresses[k]!),
            );
            index.changed(s.id, records.get(s.id), next);
            records.set(s.id, next);
          } else if (s.kind === 'delete') {
            index.changed(s.id, records.get(s.id), undefined);
            records.delete(s.id);
          } else {
            index.reset();
            for (const [id, r] of records) index.changed(id, undefined, r);
          }
          const scan = scanLookups([...records.values()]);
          for (const id of ids) expect(index.exists(id)).toBe(scan.exists(id));
          for (const [network, address] of addresses) {
            for (const except of [undefined, ...ids]) {
              // the scan finds the first holder, the index any one: both find one exactly when there is one
              expect(index.addressOwner(network, address, except) !== undefined).toBe(scan.addressOwner(network, address, except) !== undefined);
              const owner = index.addressOwner(network, address, except);
              if (owner !== undefined) {
                expect(owner).not.toBe(except);
                expect(records.get(owner)!.spec.networks.some((a) => a.network === network && a.address === address)).toBe(true);
              }
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
