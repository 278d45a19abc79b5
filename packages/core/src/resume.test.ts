import { describe, expect, it } from 'vitest';
import { WorkloadSpec, type HostRecord, type WorkloadRecord } from '@ferry/protocol';
import { sampleHostRecord, sampleReport, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { DEFAULT_PLACEMENT_POLICY } from './placement.ts';
import { resumeTarget } from './resume.ts';
import { MiB } from './snapshot.ts';

const probe = (token: string, sees: Array<[string, string]>) => ({ token, sees: sees.map(([hostId, t]) => ({ hostId, token: t })) });
const pools = (p: ReturnType<typeof probe>) => [
  { id: 'local', path: '/p', shared: false, totalBytes: 2 ** 40, freeBytes: 2 ** 39 },
  { id: 'shared', path: '/mnt/s', shared: true, totalBytes: 2 ** 40, freeBytes: 2 ** 39, probe: p },
];
/** h1, h2, h3 mount one shared pool: h2 and h3 read the token h1 wrote (proven) */
const host = (id: string, overrides: Partial<HostRecord> = {}, memoryGiB = 16): HostRecord =>
  sampleHostRecord(id, {
    capacity: sampleReport(id, {
      memory: { totalBytes: memoryGiB * 1024 * MiB, availableBytes: memoryGiB * 512 * MiB },
      pools: pools(probe(`${id}-token-0123456789`, id === 'h1' ? [] : [['h1', 'h1-token-0123456789']])),
    }),
    ...overrides,
  });

const spec = (id: string, pool: 'local' | 'shared', memoryMiB = 1024) =>
  WorkloadSpec.parse({ id, template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB, diskMiB: 100 }, networks: [{ network: 'prod', address: '10.77.0.5' }], pool });

const suspendedOn = (hostId: string, pool: 'local' | 'shared', memoryMiB = 1024): WorkloadRecord => ({
  ...sampleWorkloadRecord(spec('w', pool, memoryMiB), null, 'suspended'),
  desired: 'suspended',
  suspended: { hostId, pool, shared: pool === 'shared', imagesDir: `/x/containers/w/suspended`, bytes: 20 * MiB, at: 1, epoch: 1 },
});

describe('where a suspended workload resumes', () => {
  it('goes back to the host it was suspended on when that host can take it', () => {
    const r = resumeTarget(suspendedOn('h1', 'shared'), { hosts: [host('h1'), host('h2', {}, 64)], workloads: [] }, DEFAULT_PLACEMENT_POLICY);
    expect(r).toMatchObject({ ok: true, hostId: 'h1' });
  });

  it('on a shared pool, goes to another proven host when its own cannot (every reason kept otherwise)', () => {
    const r = resumeTarget(suspendedOn('h1', 'shared'), { hosts: [host('h1', { state: 'down' }), host('h2'), host('h3', {}, 64)], workloads: [] }, DEFAULT_PLACEMENT_POLICY);
    expect(r).toMatchObject({ ok: true, hostId: 'h3' }); // the most free memory, as placement spreads
    if (r.ok) expect(r.reason).toContain('shared pool shared');
  });

  it('on a local pool, never leaves its host: refused while that host is down, with the reason', () => {
    const r = resumeTarget(suspendedOn('h1', 'local'), { hosts: [host('h1', { state: 'down' }), host('h2')], workloads: [] }, DEFAULT_PLACEMENT_POLICY);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.code).toBe('NO_HOST');
      expect(r.refusals.map((x) => x.code)).toEqual(['HOST_DOWN']);
      expect(r.message).toContain('local pool local');
    }
  });

  it('refuses a requested host the pool is not proven shared with, or that is local-only', () => {
    const unproven = host('h4', { capacity: sampleReport('h4', { pools: pools(probe('h4-token-0123456789', [])) }) });
    const shared = resumeTarget(suspendedOn('h1', 'shared'), { hosts: [host('h1'), unproven], workloads: [] }, DEFAULT_PLACEMENT_POLICY, 'h4');
    expect(shared).toMatchObject({ ok: false, code: 'STORAGE_NOT_SHARED' });
    const local = resumeTarget(suspendedOn('h1', 'local'), { hosts: [host('h1'), host('h2')], workloads: [] }, DEFAULT_PLACEMENT_POLICY, 'h2');
    expect(local).toMatchObject({ ok: false, code: 'STORAGE_NOT_SHARED' });
    expect(resumeTarget(suspendedOn('h1', 'local'), { hosts: [host('h1')], workloads: [] }, DEFAULT_PLACEMENT_POLICY, 'nope')).toMatchObject({ ok: false, code: 'HOST_UNKNOWN' });
  });

  it('runs the feasibility checks on a requested host: room, CPU, CRIU', () => {
    const full = resumeTarget(suspendedOn('h1', 'shared', 8192), { hosts: [host('h1'), host('h2', {}, 4)], workloads: [] }, DEFAULT_PLACEMENT_POLICY, 'h2');
    expect(full).toMatchObject({ ok: false, code: 'NO_HOST' });
    if (!full.ok) expect(full.refusals.map((x) => x.code)).toEqual(['MEMORY_INSUFFICIENT']);
    const noCriu = host('h2', { capacity: { ...host('h2').capacity, criu: null } });
    const criu = resumeTarget(suspendedOn('h1', 'shared'), { hosts: [host('h1'), noCriu], workloads: [] }, DEFAULT_PLACEMENT_POLICY, 'h2');
    if (!criu.ok) expect(criu.refusals.map((x) => x.code)).toEqual(['CRIU_UNSUPPORTED']);
    expect(criu.ok).toBe(false);
    const record = { ...suspendedOn('h1', 'shared'), cpu: { ...host('h1').capacity.cpu, flags: [...host('h1').capacity.cpu.flags, 'avx512f'] } };
    const cpu = resumeTarget(record, { hosts: [host('h1'), host('h2')], workloads: [] }, DEFAULT_PLACEMENT_POLICY, 'h2');
    if (!cpu.ok) expect(cpu.refusals.map((x) => x.code)).toEqual(['CPU_FLAGS_MISSING']);
    expect(cpu.ok).toBe(false);
  });

  it('counts the room other workloads hold, and only a suspended workload resumes', () => {
    const busy = sampleWorkloadRecord(spec('big', 'local', 15 * 1024), 'h1');
    const r = resumeTarget(suspendedOn('h1', 'local', 2048), { hosts: [host('h1')], workloads: [busy] }, DEFAULT_PLACEMENT_POLICY);
    expect(r).toMatchObject({ ok: false, code: 'NO_HOST' });
    if (!r.ok) expect(r.refusals.map((x) => x.code)).toEqual(['MEMORY_INSUFFICIENT']);
    const running = { ...sampleWorkloadRecord(spec('w', 'local'), 'h1'), suspended: null };
    expect(resumeTarget(running, { hosts: [host('h1')], workloads: [running] }, DEFAULT_PLACEMENT_POLICY)).toMatchObject({ ok: false, code: 'NOT_SUSPENDED' });
  });
});
