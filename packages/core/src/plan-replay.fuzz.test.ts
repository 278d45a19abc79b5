/**
 * Property (issue 15, part 1): every move a planner emits passes the migration's own last check
 * — hostProblems, as the runner's checkDestination calls it, then chooseStrategy — at that point
 * of the plan, on random clusters: local and proven-shared pools of random fill, hosts without
 * CRIU or suspect, older CPUs, anti-affinity, migrations in flight and workloads being created.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WorkloadSpec, type CpuInfo, type HostRecord, type PlanMove, type WorkloadRecord } from '@ferry/protocol';
import { sampleHostRecord, sampleReport, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { fuzzParams } from '../../../test/fuzz/kit.ts';
import { allRefusals, firstRefusal } from './feasibility.ts';
import { chooseStrategy } from './migration.ts';
import { modelFromSnapshot } from './planner/from-snapshot.ts';
import { Usage } from './planner/model.ts';
import { DEFAULT_PLACEMENT_POLICY, hostProblems } from './placement.ts';
import { buildEvacuationPlan, buildRebalancePlan } from './plans.ts';
import { MiB, sharedPoolProven, type ClusterSnapshot } from './snapshot.ts';

const GiB = 1024 * MiB;
const NEW_FLAGS = ['fpu', 'sse2', 'avx2', 'avx512f'];

const hostArb = fc.record({
  memoryGiB: fc.integer({ min: 8, max: 64 }),
  cpus: fc.integer({ min: 2, max: 16 }),
  localGiB: fc.integer({ min: 20, max: 400 }),
  localFree: fc.double({ min: 0.2, max: 1, noNaN: true }),
  nfs: fc.boolean(),
  criu: fc.constantFrom(true, true, true, true, true, true, true, false),
  state: fc.constantFrom<HostRecord['state']>('up', 'up', 'up', 'up', 'up', 'up', 'up', 'suspect'),
  olderCpu: fc.constantFrom(false, false, false, true),
});

const workloadArb = fc.record({
  // skewed: many on the first host, so that there is something to rebalance
  host: fc.oneof(fc.constant(0), fc.nat()),
  memoryMiB: fc.integer({ min: 128, max: 6144 }),
  vcpus: fc.constantFrom(0.5, 1, 2, 4),
  diskGiB: fc.integer({ min: 1, max: 100 }),
  onNfs: fc.boolean(),
  phase: fc.constantFrom<WorkloadRecord['phase']>('running', 'running', 'running', 'running', 'running', 'running', 'stopped', 'creating', 'migrating'),
  antiAffinity: fc.constantFrom<string[]>([], [], [], ['db'], ['web']),
  migratingTo: fc.nat(),
});

const clusterArb = fc.record({
  hosts: fc.array(hostArb, { minLength: 2, maxLength: 6, size: 'max' }),
  workloads: fc.array(workloadArb, { minLength: 4, maxLength: 30, size: 'max' }),
  nfsFreeGiB: fc.integer({ min: 0, max: 2000 }),
});

type Generated = typeof clusterArb extends fc.Arbitrary<infer T> ? T : never;

function snapshotOf(g: Generated): ClusterSnapshot {
  const ids = g.hosts.map((_, i) => `h${i}`);
  const nfsHosts = ids.filter((_, i) => g.hosts[i]!.nfs);
  const token = (id: string) => id.padEnd(16, 'a');
  const hosts = g.hosts.map((h, i): HostRecord => {
    const id = ids[i]!;
    const base = sampleReport(id);
    const cpu: CpuInfo = { ...base.cpu, count: h.cpus, flags: h.olderCpu ? NEW_FLAGS.slice(0, 2) : NEW_FLAGS };
    const pools = [{ id: 'local', path: '/p', shared: false, totalBytes: h.localGiB * GiB, freeBytes: Math.floor(h.localGiB * h.localFree) * GiB }];
    if (h.nfs) {
      const sees = nfsHosts.filter((o) => o !== id).map((o) => ({ hostId: o, token: token(o) }));
      pools.push({ id: 'nfs', path: '/s', shared: true, totalBytes: 4000 * GiB, freeBytes: g.nfsFreeGiB * GiB, probe: { token: token(id), sees } } as (typeof pools)[number]);
    }
    return sampleHostRecord(id, {
      state: h.state,
      capacity: { ...base, cpu, memory: { totalBytes: h.memoryGiB * GiB, availableBytes: h.memoryGiB * GiB }, pools, criu: h.criu ? base.criu : null },
    });
  });
  const workloads = g.workloads.map((w, k): WorkloadRecord => {
    const at = w.host % hosts.length;
    const onNfs = w.onNfs && g.hosts[at]!.nfs;
    const spec = WorkloadSpec.parse({
      id: `w${k}`,
      template: 'busybox',
      command: ['/bin/sh'],
      resources: { vcpus: w.vcpus, memoryMiB: w.memoryMiB, diskMiB: w.diskGiB * 1024 },
      networks: [{ network: 'prod', address: '10.77.0.5' }],
      pool: onNfs ? 'nfs' : 'local',
      placement: { antiAffinity: w.antiAffinity },
    });
    const target = ids[w.migratingTo % ids.length]!;
    const migratingTo = w.phase === 'migrating' && target !== ids[at] ? target : null;
    return { ...sampleWorkloadRecord(spec, ids[at]!, w.phase === 'migrating' && !migratingTo ? 'running' : w.phase), migratingTo };
  });
  return { hosts, workloads };
}

/** The migration's own checks for one move, on the cluster as it is at that point: every refusal, as code: message. */
function migrationRefusals(snapshot: ClusterSnapshot, move: Pick<PlanMove, 'workload' | 'from' | 'to'>): string[] {
  const workload = snapshot.workloads.find((w) => w.spec.id === move.workload)!;
  const source = snapshot.hosts.find((h) => h.id === move.from)!;
  const destination = snapshot.hosts.find((h) => h.id === move.to)!;
  const problems = hostProblems(workload.spec, destination, snapshot, DEFAULT_PLACEMENT_POLICY, { migrating: { cpu: workload.cpu ?? source.capacity.cpu, from: source.id } }).map(
    (p) => `${p.code}: ${p.message}`,
  );
  const choice = chooseStrategy(source, destination, workload.phase === 'running', { mode: 'auto', strategy: null });
  if (!choice.ok) problems.push(`${choice.problem.code}: ${choice.problem.message}`);
  return problems;
}

/** The cluster after one move, as the migration leaves it: the workload there, its root filesystem copied unless the pool is shared. */
function applyMove(snapshot: ClusterSnapshot, move: Pick<PlanMove, 'workload' | 'from' | 'to'>): ClusterSnapshot {
  const workload = snapshot.workloads.find((w) => w.spec.id === move.workload)!;
  const disk = workload.spec.resources.diskMiB * MiB;
  const copied = !sharedPoolProven(snapshot, workload.spec.pool, move.from, move.to);
  const source = snapshot.hosts.find((h) => h.id === move.from)!;
  const hosts = snapshot.hosts.map((h) => {
    const delta = !copied ? 0 : h.id === move.from ? disk : h.id === move.to ? -disk : 0;
    if (delta === 0) return h;
    return { ...h, capacity: { ...h.capacity, pools: h.capacity.pools.map((p) => (p.id === workload.spec.pool ? { ...p, freeBytes: p.freeBytes + delta } : p)) } };
  });
  const moved: WorkloadRecord = { ...workload, hostId: move.to, epoch: workload.epoch + 1, cpu: workload.cpu ?? source.capacity.cpu };
  return { ...snapshot, hosts, workloads: snapshot.workloads.map((w) => (w === workload ? moved : w)) };
}

function replay(snapshot: ClusterSnapshot, moves: Array<Pick<PlanMove, 'workload' | 'from' | 'to'>>): void {
  let now = snapshot;
  moves.forEach((move, step) => {
    expect(migrationRefusals(now, move), `step ${step + 1}: ${move.workload} ${move.from} → ${move.to}`).toEqual([]);
    now = applyMove(now, move);
  });
}

describe('every planned move passes the migration’s own check at that point of the plan', () => {
  it('rebalance plans', () => {
    let planned = 0;
    fc.assert(
      fc.property(clusterArb, (g) => {
        const snapshot = snapshotOf(g);
        const moves = buildRebalancePlan(snapshot, { maxMoves: 30, minGain: 1e-6 }).moves;
        planned += moves.length;
        replay(snapshot, moves);
      }),
      fuzzParams(200),
    );
    expect(planned).toBeGreaterThan(200); // the property is not vacuous
  });

  it('evacuation plans', () => {
    let evacuated = 0;
    let busy = 0;
    fc.assert(
      fc.property(clusterArb, fc.nat(), (g, victim) => {
        const snapshot = snapshotOf(g);
        // any host, whatever its workloads are doing: the busy ones (being created, mid-migration)
        // are listed as staying, never moved, so every move is one a migration accepts
        const host = snapshot.hosts[victim % snapshot.hosts.length]!.id;
        const result = buildEvacuationPlan(snapshot, host, { keepHaCapacity: false, partial: true });
        if (result.ok) {
          for (const m of result.plan.moves) {
            const w = snapshot.workloads.find((x) => x.spec.id === m.workload)!;
            expect(w.phase === 'running' || w.phase === 'stopped').toBe(true);
            expect(w.migratingTo).toBeNull();
          }
          for (const u of result.plan.unplaced ?? []) if (u.busy !== undefined) busy++;
          evacuated += result.plan.moves.length;
          replay(snapshot, result.plan.moves);
        }
      }),
      fuzzParams(200),
    );
    expect(evacuated).toBeGreaterThan(40);
    expect(busy).toBeGreaterThan(0);
  });
});

describe('firstRefusal', () => {
  it('is the first of the declared checks that refuses (its spelled-out chain keeps FEASIBILITY_CHECKS’ order)', () => {
    let refused = 0;
    fc.assert(
      fc.property(clusterArb, (g) => {
        const cluster = modelFromSnapshot(snapshotOf(g));
        const usage = new Usage(cluster);
        cluster.workloads.forEach((_, i) =>
          cluster.hosts.forEach((_, to) => {
            const all = allRefusals(cluster, usage, i, to);
            if (all.length > 1) refused++;
            expect(firstRefusal(cluster, usage, i, to)).toBe(all[0] ?? null);
          }),
        );
      }),
      fuzzParams(100),
    );
    expect(refused).toBeGreaterThan(100); // many pairs refused for several reasons at once
  });
});
