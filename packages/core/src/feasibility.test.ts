import { describe, expect, it } from 'vitest';
import { WorkloadSpec, type HostRecord, type StoragePoolReport, type WorkloadRecord } from '@ferry/protocol';
import { sampleHostRecord, sampleReport, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { FEASIBILITY_CHECKS, REFUSAL_CODES, firstRefusal } from './feasibility.ts';
import { DEFAULT_PLACEMENT_POLICY, hostProblems, placeWorkload } from './placement.ts';
import { buildEvacuationPlan, buildRebalancePlan } from './plans.ts';
import { compatibility } from './migration.ts';
import { modelFromSnapshot } from './planner/from-snapshot.ts';
import { Usage, moveBytes } from './planner/model.ts';
import { planEvacuation } from './planner/evacuate.ts';
import { MiB, type ClusterSnapshot } from './snapshot.ts';

const GiB = 1024 * MiB;

const local = (totalGiB: number, freeGiB = totalGiB): StoragePoolReport => ({ id: 'local', path: '/p', shared: false, totalBytes: totalGiB * GiB, freeBytes: freeGiB * GiB });
/** the pool `nfs`, proven shared among `ids` (each host sees every other's token) */
const nfs = (self: string, ids: string[], totalGiB = 1024, freeGiB = totalGiB): StoragePoolReport => ({
  id: 'nfs',
  path: '/s',
  shared: true,
  totalBytes: totalGiB * GiB,
  freeBytes: freeGiB * GiB,
  probe: { token: self.padEnd(16, 'a'), sees: ids.filter((o) => o !== self).map((o) => ({ hostId: o, token: o.padEnd(16, 'a') })) },
});

const host = (id: string, pools: StoragePoolReport[], overrides: Partial<HostRecord> = {}, memoryGiB = 64): HostRecord =>
  sampleHostRecord(id, { capacity: sampleReport(id, { memory: { totalBytes: memoryGiB * GiB, availableBytes: memoryGiB * GiB }, pools }), ...overrides });

const spec = (id: string, o: { memoryMiB?: number; diskGiB?: number; pool?: string; antiAffinity?: string[]; hosts?: string[] } = {}) =>
  WorkloadSpec.parse({
    id,
    template: 'busybox',
    command: ['/bin/sh'],
    resources: { vcpus: 1, memoryMiB: o.memoryMiB ?? 1024, diskMiB: (o.diskGiB ?? 1) * 1024 },
    networks: [{ network: 'prod', address: '10.77.0.5' }],
    pool: o.pool ?? 'local',
    placement: { antiAffinity: o.antiAffinity ?? [], hosts: o.hosts ?? [] },
  });
const on = (hostId: string, s: WorkloadSpec, phase: WorkloadRecord['phase'] = 'running', extra: Partial<WorkloadRecord> = {}): WorkloadRecord => ({
  ...sampleWorkloadRecord(s, hostId, phase),
  ...extra,
});

/** The planner's first refusal for moving workload `id` to `to`, on the model of the snapshot. */
function plannerSays(snapshot: ClusterSnapshot, id: string, to: string) {
  const cluster = modelFromSnapshot(snapshot);
  return firstRefusal(
    cluster,
    new Usage(cluster),
    cluster.workloads.findIndex((w) => w.id === id),
    cluster.hosts.findIndex((h) => h.id === to),
  );
}

describe('the feasibility checks', () => {
  it('are declared once, in order, each with its own codes from the closed union', () => {
    expect(FEASIBILITY_CHECKS.map((c) => c.name)).toEqual([
      'same-host',
      'allowed-host',
      'host-up',
      'host-not-draining',
      'template-available',
      'storage-pool-present',
      'networks-attached',
      'live-migration-possible',
      'cpu-vendor',
      'cpu-family',
      'cpu-flags',
      'memory-room',
      'cpu-room',
      'disk-room',
      'anti-affinity',
    ]);
    const codes = FEASIBILITY_CHECKS.flatMap((c) => c.codes);
    expect(new Set(codes).size).toBe(codes.length);
    // every code but placement's cluster-wide HA admission belongs to exactly one check
    expect([...codes, 'HA_ADMISSION'].sort()).toEqual([...REFUSAL_CODES].sort());
  });
});

describe('placement and the planner agree (one set of checks)', () => {
  it('on suspect hosts: both say HOST_SUSPECT, not HOST_DOWN', () => {
    const snapshot: ClusterSnapshot = { hosts: [host('h1', [local(100)]), host('h2', [local(100)], { state: 'suspect' })], workloads: [on('h1', spec('w'))] };
    expect(hostProblems(spec('w'), snapshot.hosts[1]!, snapshot, DEFAULT_PLACEMENT_POLICY, { migrating: { cpu: snapshot.hosts[0]!.capacity.cpu, from: 'h1' } }).map((p) => p.code)).toEqual([
      'HOST_SUSPECT',
    ]);
    expect(plannerSays(snapshot, 'w', 'h2')).toBe('HOST_SUSPECT');
  });

  it('on in-flight reservations: a migration on its way in holds memory and anti-affinity on its destination for both', () => {
    const hosts = [host('h1', [local(100)]), host('h2', [local(100)], {}, 8), host('h3', [local(100)])];
    const snapshot: ClusterSnapshot = {
      hosts,
      workloads: [
        on('h3', spec('incoming', { memoryMiB: 6 * 1024, antiAffinity: ['db'] }), 'migrating', { migratingTo: 'h2' }),
        on('h1', spec('w', { memoryMiB: 4 * 1024 })),
        on('h1', spec('db2', { antiAffinity: ['db'] })),
      ],
    };
    const migrating = { migrating: { cpu: hosts[0]!.capacity.cpu, from: 'h1' } };
    expect(hostProblems(spec('w', { memoryMiB: 4 * 1024 }), hosts[1]!, snapshot, DEFAULT_PLACEMENT_POLICY, migrating).map((p) => p.code)).toEqual(['MEMORY_INSUFFICIENT']);
    expect(plannerSays(snapshot, 'w', 'h2')).toBe('MEMORY_INSUFFICIENT');
    expect(hostProblems(spec('db2', { antiAffinity: ['db'] }), hosts[1]!, snapshot, DEFAULT_PLACEMENT_POLICY, migrating).map((p) => p.code)).toEqual(['ANTI_AFFINITY']);
    expect(plannerSays(snapshot, 'db2', 'h2')).toBe('ANTI_AFFINITY');
  });

  it('on CRIU: a live move needs it on both hosts, a restart or a new workload does not', () => {
    const noCriu = host('h2', [local(100)]);
    noCriu.capacity = { ...noCriu.capacity, criu: null };
    const snapshot: ClusterSnapshot = { hosts: [host('h1', [local(100)]), noCriu], workloads: [on('h1', spec('w'))] };
    const cpu = snapshot.hosts[0]!.capacity.cpu;
    expect(hostProblems(spec('w'), noCriu, snapshot, DEFAULT_PLACEMENT_POLICY, { migrating: { cpu, from: 'h1', live: true } }).map((p) => p.code)).toEqual(['CRIU_UNSUPPORTED']);
    expect(plannerSays(snapshot, 'w', 'h2')).toBe('CRIU_UNSUPPORTED');
    expect(hostProblems(spec('w'), noCriu, snapshot, DEFAULT_PLACEMENT_POLICY, { migrating: { cpu, from: 'h1' } })).toEqual([]);
    expect(placeWorkload(spec('new'), { ...snapshot, hosts: [noCriu] }).ok).toBe(true);
  });

  it('on disk: the workload’s own pool, with room promised to workloads still being created', () => {
    const snapshot: ClusterSnapshot = {
      hosts: [host('h1', [local(1000)]), host('h2', [local(100, 60), { ...local(10_000), id: 'big' }])],
      workloads: [on('h1', spec('w', { diskGiB: 50 })), on('h2', spec('creating', { diskGiB: 20 }), 'creating')],
    };
    const problems = hostProblems(spec('w', { diskGiB: 50 }), snapshot.hosts[1]!, snapshot, DEFAULT_PLACEMENT_POLICY, { migrating: { cpu: snapshot.hosts[0]!.capacity.cpu, from: 'h1' } });
    expect(problems).toEqual([{ hostId: 'h2', code: 'DISK_INSUFFICIENT', message: 'needs 51200 MiB in pool local, 40960 MiB free' }]);
    expect(plannerSays(snapshot, 'w', 'h2')).toBe('DISK_INSUFFICIENT');
  });

  it('compatibility reports SAME_HOST from the same checks', () => {
    const snapshot: ClusterSnapshot = { hosts: [host('h1', [local(100)])], workloads: [on('h1', spec('w'))] };
    expect(compatibility(snapshot.workloads[0]!, 'h1', snapshot).map((p) => p.code)).toEqual(['SAME_HOST']);
  });
});

describe('per-pool capacity in the planning model', () => {
  it('refuses the second of two 80 GiB local-pool workloads onto a 100 GiB pool, whatever other pools the host has', () => {
    const snapshot: ClusterSnapshot = {
      hosts: [host('h1', [local(1000, 800)]), host('h2', [local(100), nfs('h2', ['h2'], 10_000)])],
      workloads: [on('h1', spec('a', { diskGiB: 80 })), on('h1', spec('b', { diskGiB: 80 }))],
    };
    const cluster = modelFromSnapshot(snapshot);
    // h2's own disk is its local pool: its unshared nfs pool is a storage of its own
    expect(cluster.hosts[1]!.diskTotal).toBe(100 * GiB + 10_000 * GiB);
    const evacuation = planEvacuation(cluster, ['h1'], { keepHaCapacity: false });
    expect(evacuation).toMatchObject({ ok: false, unplaced: [{ refused: { DISK_INSUFFICIENT: 1 } }] });
    // and a rebalance moves at most one of them there
    const plan = buildRebalancePlan(snapshot, { maxMoves: 10, minGain: 0 });
    expect(plan.moves.filter((m) => m.to === 'h2').length).toBeLessThanOrEqual(1);
  });

  it('counts a shared pool once, as no host’s disk, and moves within it need no room and copy nothing', () => {
    const ids = ['h1', 'h2'];
    const snapshot: ClusterSnapshot = {
      hosts: [host('h1', [local(100), nfs('h1', ids, 1000, 1)]), host('h2', [local(100), nfs('h2', ids, 1000, 1)])],
      workloads: [on('h1', spec('onnfs', { diskGiB: 200, pool: 'nfs' }))],
    };
    const cluster = modelFromSnapshot(snapshot);
    expect(cluster.pools.filter((p) => p.id === 'nfs')).toHaveLength(1);
    expect(cluster.hosts.map((h) => h.diskTotal)).toEqual([100 * GiB, 100 * GiB]);
    const usage = new Usage(cluster);
    expect([...usage.disk]).toEqual([0, 0]);
    expect(plannerSays(snapshot, 'onnfs', 'h2')).toBeNull();
    expect(moveBytes(cluster, 0, 1)).toBe(1024 * MiB); // memory only
    expect(hostProblems(snapshot.workloads[0]!.spec, snapshot.hosts[1]!, snapshot, DEFAULT_PLACEMENT_POLICY, { migrating: { cpu: snapshot.hosts[0]!.capacity.cpu, from: 'h1' } })).toEqual([]);
  });

  it('copies into a claimed-shared pool the hosts do not provably share, and needs room there', () => {
    const snapshot: ClusterSnapshot = {
      hosts: [host('h1', [local(100), nfs('h1', ['h1'], 1000, 500)]), host('h2', [local(100), nfs('h2', ['h2'], 1000, 10)])],
      workloads: [on('h1', spec('onnfs', { diskGiB: 20, pool: 'nfs' }))],
    };
    expect(plannerSays(snapshot, 'onnfs', 'h2')).toBe('DISK_INSUFFICIENT');
  });

  it('evacuates onto local pools only as far as each has room', () => {
    const snapshot: ClusterSnapshot = {
      hosts: [host('h1', [local(1000, 800)]), host('h2', [local(100)]), host('h3', [local(100)])],
      workloads: [on('h1', spec('a', { diskGiB: 80 })), on('h1', spec('b', { diskGiB: 80 }))],
    };
    const result = buildEvacuationPlan(snapshot, 'h1');
    expect(result.ok).toBe(true);
    if (result.ok) expect(new Set(result.plan.moves.map((m) => m.to))).toEqual(new Set(['h2', 'h3']));
  });
});
