import { describe, expect, it } from 'vitest';
import { WorkloadSpec, type HostRecord, type WorkloadRecord } from '@ferry/protocol';
import { sampleHostRecord, sampleReport, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { DEFAULT_PLACEMENT_POLICY, MAX_REFUSAL_DETAILS, hostProblems, placeWorkload } from './placement.ts';
import { MiB, sharedPoolProven } from './snapshot.ts';

const host = (id: string, overrides: Partial<HostRecord> = {}, memoryGiB = 16): HostRecord =>
  sampleHostRecord(id, { capacity: sampleReport(id, { memory: { totalBytes: memoryGiB * 1024 * MiB, availableBytes: memoryGiB * 512 * MiB } }), ...overrides });

const spec = (id: string, memoryMiB = 1024, placement: Record<string, unknown> = {}) =>
  WorkloadSpec.parse({
    id,
    template: 'busybox',
    command: ['/bin/sh'],
    resources: { vcpus: 1, memoryMiB, diskMiB: 100 },
    networks: [{ network: 'prod', address: '10.77.0.5' }],
    pool: 'local',
    placement,
  });

const on = (hostId: string, s: WorkloadSpec, phase: WorkloadRecord['phase'] = 'running') => sampleWorkloadRecord(s, hostId, phase);

describe('placement', () => {
  it('spreads: picks the host with the most unallocated memory, and says why', () => {
    const result = placeWorkload(spec('new'), { hosts: [host('h1'), host('h2')], workloads: [on('h1', spec('a', 4096))] });
    expect(result.ok && result.decision.hostId).toBe('h2');
    if (result.ok) expect(result.decision.reason).toMatch(/2 of 2 hosts can take it; h2 has the most unallocated memory/);
  });

  it('binpacks when configured: the fullest host that still fits', () => {
    const snapshot = { hosts: [host('h1'), host('h2')], workloads: [on('h1', spec('a', 4096))] };
    const result = placeWorkload(spec('new'), snapshot, { ...DEFAULT_PLACEMENT_POLICY, mode: 'binpack' });
    expect(result.ok && result.decision.hostId).toBe('h1');
    if (result.ok) expect(result.decision.reason).toContain('binpack');
  });

  it('explains every refusal and counts them by reason', () => {
    const hosts = [
      host('down', { state: 'down' }),
      host('full', {}, 1),
      host('nonet', { capacity: sampleReport('nonet', { networks: [] }) }),
      host('nopool', { capacity: sampleReport('nopool', { pools: [] }) }),
      host('notpl', { capacity: sampleReport('notpl', { templates: [] }) }),
    ];
    const result = placeWorkload(spec('big', 2048), { hosts, workloads: [] });
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.refused).toEqual({ HOST_DOWN: 1, MEMORY_INSUFFICIENT: 1, NETWORK_MISSING: 1, STORAGE_POOL_MISSING: 1, TEMPLATE_MISSING: 1 });
      expect(result.refusals.find((r) => r.hostId === 'full')?.message).toBe('needs 2048 MiB, 1024 MiB unallocated');
    }
  });

  it('keeps anti-affinity groups apart and honours allowed hosts', () => {
    const db1 = spec('db-1', 512, { antiAffinity: ['db'] });
    const result = placeWorkload(spec('db-2', 512, { antiAffinity: ['db'] }), { hosts: [host('h1'), host('h2', {}, 8)], workloads: [on('h1', db1)] });
    expect(result.ok && result.decision.hostId).toBe('h2');
    const pinned = placeWorkload(spec('p', 512, { hosts: ['h1'] }), { hosts: [host('h1', {}, 8), host('h2')], workloads: [] });
    expect(pinned.ok && pinned.decision).toMatchObject({ hostId: 'h1', refused: { NOT_ALLOWED: 1 } });
  });

  it('prefers a host running its affinity group', () => {
    const result = placeWorkload(spec('web-2', 512, { affinity: ['web'] }), { hosts: [host('h1'), host('h2', {}, 64)], workloads: [on('h1', spec('web-1', 512, { affinity: ['web'] }))] });
    expect(result.ok && result.decision.hostId).toBe('h1');
  });

  it('counts the disk of workloads still being created against the pool', () => {
    const small = host('h1', { capacity: sampleReport('h1', { pools: [{ id: 'local', path: '/p', shared: false, totalBytes: 300 * MiB, freeBytes: 150 * MiB }] }) });
    const result = placeWorkload(spec('b'), { hosts: [small], workloads: [on('h1', spec('a'), 'creating')] });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.refused).toEqual({ DISK_INSUFFICIENT: 1 });
  });
});

describe('shared pools are proven, not trusted', () => {
  const probe = (token: string, sees: Array<[string, string]>) => ({ token, sees: sees.map(([hostId, t]) => ({ hostId, token: t })) });
  const pool = (id: string, p?: ReturnType<typeof probe>) => ({ id: 'shared', path: '/mnt/s', shared: true, totalBytes: 2 ** 40, freeBytes: 2 ** 39, ...(p ? { probe: p } : {}) });
  const withPool = (id: string, p?: ReturnType<typeof probe>) => host(id, { capacity: sampleReport(id, { pools: [pool(id, p)] }) });

  it('is proven when one host reads the token the other wrote', () => {
    const snapshot = { hosts: [withPool('a', probe('aaaaaaaaaaaaaaaa', [])), withPool('b', probe('bbbbbbbbbbbbbbbb', [['a', 'aaaaaaaaaaaaaaaa']]))], workloads: [] };
    expect(sharedPoolProven(snapshot, 'shared', 'a', 'b')).toBe(true);
  });

  it('is not proven by the config alone, nor by a stale token', () => {
    expect(sharedPoolProven({ hosts: [withPool('a'), withPool('b')], workloads: [] }, 'shared', 'a', 'b')).toBe(false);
    const stale = { hosts: [withPool('a', probe('aaaaaaaaaaaaaaaa', [])), withPool('b', probe('bbbbbbbbbbbbbbbb', [['a', 'cccccccccccccccc']]))], workloads: [] };
    expect(sharedPoolProven(stale, 'shared', 'a', 'b')).toBe(false);
  });
});

describe('a cluster CPU baseline (EVC-style)', () => {
  it('lets a workload started on a newer CPU move to any host that offers the baseline', () => {
    const older = host('old', { capacity: sampleReport('old', { cpu: { vendor: 'AuthenticAMD', family: 26, model: 1, modelName: 'older', flags: ['fpu', 'sse2'], count: 8 } }) });
    const started = { vendor: 'AuthenticAMD', family: 26, model: 2, modelName: 'newer', flags: ['fpu', 'sse2', 'avx2'], count: 8 };
    const snapshot = { hosts: [older], workloads: [] };
    expect(hostProblems(spec('w'), older, snapshot, DEFAULT_PLACEMENT_POLICY, { migrating: { cpu: started } }).map((p) => p.code)).toEqual(['CPU_FLAGS_MISSING']);
    const evc = { ...DEFAULT_PLACEMENT_POLICY, cpuBaseline: { vendor: 'AuthenticAMD', family: 26, flags: ['fpu', 'sse2'] } };
    expect(hostProblems(spec('w'), older, snapshot, evc, { migrating: { cpu: started } })).toEqual([]);
    const intel = host('intel', { capacity: sampleReport('intel', { cpu: { ...started, vendor: 'GenuineIntel', family: 6 } }) });
    expect(hostProblems(spec('w'), intel, { hosts: [intel], workloads: [] }, evc).map((p) => p.code)).toEqual(['CPU_VENDOR_MISMATCH']);
  });
});

describe('refusals at scale', () => {
  it('counts every refusal but explains at most MAX_REFUSAL_DETAILS hosts per code', () => {
    const many = Array.from({ length: 80 }, (_, i) => sampleHostRecord(`h${String(i).padStart(2, '0')}`));
    const spec = WorkloadSpec.parse({
      id: 'pinned',
      template: 'busybox',
      command: ['/bin/sh'],
      resources: { vcpus: 0.5, memoryMiB: 64, diskMiB: 64 },
      networks: [],
      pool: 'local',
      placement: { hosts: ['nowhere'] },
    });
    const result = placeWorkload(spec, { hosts: many, workloads: [] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(Object.values(result.refused).reduce((a, b) => a + b, 0)).toBe(80);
    expect(result.refusals.length).toBe(MAX_REFUSAL_DETAILS);
  });
});
