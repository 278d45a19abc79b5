import { describe, expect, it } from 'vitest';
import type { WorkloadRecord } from '@ferry/protocol';
import { WorkloadSpec } from '@ferry/protocol';
import { sampleHostRecord, sampleReport, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { validateWorkloadRequest, workloadWarnings } from './validation.ts';
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

const existing = (id: string, address: string): WorkloadRecord => sampleWorkloadRecord(WorkloadSpec.parse(spec({ id, networks: [{ network: 'prod', address }] })), 'h1');

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

  it('reports an address with an octet above 255 as a bad field, without throwing', () => {
    const result = validateWorkloadRequest(spec({ networks: [{ network: 'prod', address: '999.1.1.1' }] }), snapshot);
    expect(result.ok ? [] : result.problems.map((p) => `${p.field}:${p.code}`)).toEqual(['networks.0.address:INVALID']);
  });

  it('refuses a vCPU count below 0.01 (a 0 µs CFS quota would mean no limit at all)', () => {
    const tiny = validateWorkloadRequest(spec({ resources: { vcpus: 1e-300, memoryMiB: 256, diskMiB: 100 } }), snapshot);
    expect(tiny.ok ? [] : tiny.problems.map((p) => `${p.field}:${p.code}:${p.message}`)).toEqual([expect.stringMatching(/^resources\.vcpus:INVALID:.*0\.01/)]);
    expect(validateWorkloadRequest(spec({ resources: { vcpus: 0.01, memoryMiB: 256, diskMiB: 100 } }), snapshot).ok).toBe(true);
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

describe('warnings about a valid spec', () => {
  const ha = (pool: string, enabled = true) => WorkloadSpec.parse(spec({ pool, ha: { enabled, priority: 5 } }));
  const probe = (token: string, sees: Array<[string, string]>) => ({ token, sees: sees.map(([hostId, t]) => ({ hostId, token: t })) });
  const sharing = (id: string, p: ReturnType<typeof probe>) =>
    sampleHostRecord(id, {
      capacity: sampleReport(id, {
        pools: [
          { id: 'shared', path: '/mnt/s', shared: true, totalBytes: 2 ** 40, freeBytes: 2 ** 39, probe: p },
          { id: 'local', path: '/l', shared: false, totalBytes: 2 ** 40, freeBytes: 2 ** 39 },
        ],
      }),
    });
  const proven = { hosts: [sharing('h1', probe('aaaaaaaaaaaaaaaa', [])), sharing('h2', probe('bbbbbbbbbbbbbbbb', [['h1', 'aaaaaaaaaaaaaaaa']]))], workloads: [] };

  it('warns that an HA workload on a local pool cannot be restarted elsewhere, naming the shared pool', () => {
    const warnings = workloadWarnings(ha('local'), proven);
    expect(warnings.map((w) => w.code)).toEqual(['HA_POOL_LOCAL']);
    expect(warnings[0]!.message).toMatch(/pool local is local to each host.*shared pool \(shared\)/);
  });

  it('warns when no two hosts are proven to share the pool yet', () => {
    expect(workloadWarnings(ha('shared'), snapshot).map((w) => w.code)).toEqual(['HA_POOL_NOT_SHARED']); // claimed shared, no probes
  });

  it('says nothing about an HA workload on a proven shared pool, or a workload without HA', () => {
    expect(workloadWarnings(ha('shared'), proven)).toEqual([]);
    expect(workloadWarnings(ha('local', false), proven)).toEqual([]);
  });
});
