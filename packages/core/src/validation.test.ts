import { describe, expect, it } from 'vitest';
import type { WorkloadRecord } from '@ferry/protocol';
import { WorkloadSpec } from '@ferry/protocol';
import { sampleHostRecord, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { validateWorkloadRequest } from './validation.ts';
import type { ClusterSnapshot } from './snapshot.ts';

const host = (id: string) => sampleHostRecord(id);

const spec = (overrides: Record<string, unknown> = {}) => ({
  id: 'web-1',
  template: 'busybox',
  command: ['/bin/sh'],
  resources: { vcpus: 1, memoryMiB: 256, diskMiB: 100 },
  networks: [{ network: 'prod', address: '10.77.0.5' }],
  pool: 'local',
  ...overrides,
});

const existing = (id: string, address: string): WorkloadRecord =>
  sampleWorkloadRecord(WorkloadSpec.parse(spec({ id, networks: [{ network: 'prod', address }] })), 'h1');

const snapshot: ClusterSnapshot = { hosts: [host('h1'), host('h2')], workloads: [existing('db-1', '10.77.0.9')] };
const codes = (raw: unknown) => {
  const result = validateWorkloadRequest(raw, snapshot);
  return result.ok ? [] : result.problems.map((p) => `${p.field}:${p.code}`);
};

describe('workload validation against the cluster', () => {
  it('accepts a good spec and fills defaults', () => {
    const result = validateWorkloadRequest(spec(), snapshot);
    expect(result.ok).toBe(true);
    if (result.ok) expect(result.spec).toMatchObject({ env: [], ha: { enabled: false, priority: 0 }, resources: { pids: 1024 } });
  });

  it('reports schema and cluster problems together', () => {
    expect(codes(spec({ id: 'db-1', template: 'centos', pool: 'nas', resources: { vcpus: -1, memoryMiB: 2 ** 40, diskMiB: 1 } }))).toEqual([
      'resources.vcpus:INVALID',
      'resources.memoryMiB:INVALID',
      'id:DUPLICATE_ID',
      'template:TEMPLATE_UNKNOWN',
      'pool:POOL_UNKNOWN',
      'resources.memoryMiB:TOO_LARGE',
    ]);
  });

  it('checks every network attachment', () => {
    expect(
      codes(
        spec({
          networks: [
            { network: 'prod', address: '10.78.0.5' },
            { network: 'prod', address: '10.77.0.255' },
            { network: 'backup', address: '10.1.1.1' },
            { network: 'prod', address: 'not-an-ip' },
          ],
        }),
      ),
    ).toEqual([
      'networks.3.address:INVALID',
      'networks.0.address:ADDRESS_OUTSIDE_SUBNET',
      'networks.1.network:DUPLICATE_NETWORK',
      'networks.1.address:ADDRESS_RESERVED',
      'networks.2.network:NETWORK_UNKNOWN',
      'networks.3.network:DUPLICATE_NETWORK',
    ]);
  });

  it('refuses addresses a host or another workload holds', () => {
    expect(codes(spec({ networks: [{ network: 'prod', address: '10.77.0.254' }] }))).toEqual(['networks.0.address:ADDRESS_IN_USE']);
    const taken = validateWorkloadRequest(spec({ networks: [{ network: 'prod', address: '10.77.0.9' }] }), snapshot);
    expect(taken.ok ? '' : taken.problems[0]!.message).toContain('db-1');
  });

  it('refuses sizes no host could ever hold', () => {
    expect(codes(spec({ resources: { vcpus: 9, memoryMiB: 512, diskMiB: 2 ** 21 } }))).toEqual(['resources.vcpus:TOO_LARGE', 'resources.diskMiB:TOO_LARGE']);
  });

  it('rejects what is not an object, and unknown fields', () => {
    expect(codes(null)).toEqual(['(body):INVALID']);
    expect(codes(spec({ colour: 'blue' }))).toEqual(['(body):INVALID']);
  });
});
