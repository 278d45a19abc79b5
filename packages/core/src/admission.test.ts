import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WorkloadSpec, type HostRecord, type WorkloadRecord } from '@ferry/protocol';
import { sampleHostRecord, sampleReport, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { haAdmissionForStart, haAdmissionProblem, haAdmissionShortfall, haAdmissionState } from './admission.ts';
import { DEFAULT_PLACEMENT_POLICY, Placer, placeWorkload, type PlacementResult } from './placement.ts';
import { restartTarget, restartTargets } from './failover.ts';
import { MiB, type ClusterSnapshot } from './snapshot.ts';

const GiB = 1024 * MiB;
const policy = { ...DEFAULT_PLACEMENT_POLICY, haAdmission: true };

/** Hosts that all prove to each other that they share the pool `shared` (each sees every token). */
function hosts(sizesGiB: Record<string, number>, overrides: Record<string, Partial<HostRecord>> = {}): HostRecord[] {
  const ids = Object.keys(sizesGiB);
  const token = (id: string) => id.padEnd(16, 't');
  return ids.map((id) =>
    sampleHostRecord(id, {
      capacity: sampleReport(id, {
        memory: { totalBytes: sizesGiB[id]! * GiB, availableBytes: sizesGiB[id]! * GiB },
        pools: [
          { id: 'local', path: '/p', shared: false, totalBytes: 2 ** 40, freeBytes: 2 ** 39 },
          { id: 'shared', path: '/s', shared: true, totalBytes: 2 ** 42, freeBytes: 2 ** 41, probe: { token: token(id), sees: ids.map((o) => ({ hostId: o, token: token(o) })) } },
        ],
      }),
      ...overrides[id],
    }),
  );
}

const spec = (id: string, memoryGiB: number, ha = true, pool = 'shared') =>
  WorkloadSpec.parse({
    id,
    template: 'busybox',
    command: ['/bin/sh'],
    resources: { vcpus: 0.5, memoryMiB: memoryGiB * 1024, diskMiB: 100 },
    networks: [{ network: 'prod', address: '10.77.0.5' }],
    pool,
    ha: { enabled: ha, priority: 1 },
  });
const on = (hostId: string, s: WorkloadSpec, phase: WorkloadRecord['phase'] = 'running') => sampleWorkloadRecord(s, hostId, phase);

describe('HA admission control (N+1)', () => {
  it('admits while any one host can fail, and refuses the workload that would break it, with the reason', () => {
    // three 16 GiB hosts, 2 × 5 GiB of HA each: a failed host's 10 GiB needs 6 + 6 free elsewhere (12) — fits
    const snapshot: ClusterSnapshot = {
      hosts: hosts({ h1: 16, h2: 16, h3: 16 }),
      workloads: ['h1', 'h2', 'h3'].flatMap((h) => [on(h, spec(`ha-${h}-1`, 5)), on(h, spec(`ha-${h}-2`, 5))]),
    };
    expect(haAdmissionShortfall(haAdmissionState(snapshot, policy))).toBeNull();
    // 3 GiB more anywhere: the other two hosts then have 6 + 3 = 9 GiB for the 10 GiB of the third
    const result = placeWorkload(spec('more', 3, false), snapshot, policy);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.refused).toEqual({ HA_ADMISSION: 3 });
      expect(result.refusals[0]!.message).toMatch(/if h\d failed, its HA workloads \(10240 MiB\) would not fit in the 9216 MiB the other hosts have left/);
    }
    // without admission control it goes in
    expect(placeWorkload(spec('more', 3, false), snapshot, DEFAULT_PLACEMENT_POLICY).ok).toBe(true);
    // and 2 GiB still fits: 6 + 4 = 10
    expect(placeWorkload(spec('small', 2, false), snapshot, policy).ok).toBe(true);
  });

  it('needs the largest HA workload to fit on one host, not only in the pooled total', () => {
    // h1's 12 GiB workload: 8 + 8 GiB free elsewhere in total, but no single host has 12
    const snapshot: ClusterSnapshot = { hosts: hosts({ h1: 16, h2: 16, h3: 16 }), workloads: [on('h2', spec('a', 8, false)), on('h3', spec('b', 8, false))] };
    const problem = haAdmissionProblem(spec('big', 12), 'h1', snapshot, policy);
    expect(problem).toMatch(/its largest HA workload \(12288 MiB\) would fit on no other host \(at most 8192 MiB left on one\)/);
  });

  it('skips a host that would break it for one that does not, and says so', () => {
    // h1 holds a 12 GiB HA workload; on h2 (the emptiest) the newcomer would leave no host with 12 GiB
    const snapshot: ClusterSnapshot = { hosts: hosts({ h1: 16, h2: 16, h3: 16 }), workloads: [on('h1', spec('db', 12)), on('h3', spec('x', 6, false))] };
    const result = placeWorkload(spec('new', 6, false), snapshot, policy);
    expect(result.ok && result.decision.hostId).toBe('h3');
    if (result.ok) expect(result.decision.reason).toContain('1 better host(s) refused by HA admission control');
  });

  it('does not count HA workloads on local pools (they cannot be restarted) nor hosts down or in maintenance', () => {
    const snapshot: ClusterSnapshot = {
      hosts: hosts({ h1: 16, h2: 16, h3: 16 }, { h3: { state: 'down' } }),
      workloads: [on('h1', spec('local-ha', 14, true, 'local')), on('h3', spec('gone', 14))],
      maintenance: [],
    };
    const state = haAdmissionState(snapshot, policy);
    expect(state.hostIds).toEqual(['h1', 'h2']);
    expect(state.haMem).toEqual([0, 0]);
    expect(placeWorkload(spec('x', 2), snapshot, policy).ok).toBe(true);
    const inMaintenance = { ...snapshot, maintenance: [{ hostId: 'h2' } as never] };
    expect(haAdmissionState(inMaintenance, policy).hostIds).toEqual(['h1']);
  });

  it('never holds back a failover restart or a migration', () => {
    // a full cluster: admission would refuse anything new, but the dead host's workload restarts
    const snapshot: ClusterSnapshot = {
      hosts: hosts({ h1: 16, h2: 16, h3: 16 }, { h1: { state: 'down' } }),
      workloads: [on('h1', spec('victim', 6)), on('h2', spec('a', 8)), on('h3', spec('b', 8))],
    };
    expect(placeWorkload(spec('new', 1), snapshot, policy).ok).toBe(false);
    const decision = restartTarget(snapshot.workloads[0]!, 'h1', snapshot, policy);
    expect(decision.ok).toBe(true);
  });

  it('checks a stopped HA workload at start: its memory is there already, its failover load is new', () => {
    // h1 runs 10 GiB of HA and holds a stopped 5 GiB HA workload; h2 has 12 GiB left
    const stopped = on('h1', spec('later', 5), 'stopped');
    const snapshot: ClusterSnapshot = { hosts: hosts({ h1: 16, h2: 16 }), workloads: [on('h1', spec('a', 10)), stopped, on('h2', spec('b', 4, false))] };
    // started, h1's HA would be 15 GiB against h2's 12 GiB left
    expect(haAdmissionForStart(stopped, snapshot, policy)).toMatch(/if h1 failed, its HA workloads \(15360 MiB\) would not fit in the 12288 MiB/);
    expect(haAdmissionForStart(stopped, snapshot, DEFAULT_PLACEMENT_POLICY)).toBeNull(); // admission control off
    const smaller = on('h1', spec('later', 2), 'stopped');
    expect(haAdmissionForStart(smaller, { ...snapshot, workloads: [snapshot.workloads[0]!, smaller, snapshot.workloads[2]!] }, policy)).toBeNull();
  });
});

/** A new workload of a generated batch: its size, HA, pool and group (a: affinity, b: anti-affinity). */
const wantedWorkload = fc.record({ gib: fc.integer({ min: 1, max: 6 }), ha: fc.boolean(), pool: fc.constantFrom('local', 'shared'), group: fc.constantFrom('', 'a', 'b') });
const batchSpecs = (wanted: Array<{ gib: number; ha: boolean; pool: string; group: string }>) =>
  wanted.map((w, i) => {
    const s = spec(`w${i}`, w.gib, w.ha, w.pool);
    return w.group ? { ...s, placement: { ...s.placement, affinity: w.group === 'a' ? ['a'] : [], antiAffinity: w.group === 'b' ? ['b'] : [] } } : s;
  });

describe('placing a batch on one model (Placer)', () => {
  /**
   * The scheduler places a batch of new workloads on one model of the cluster: it must decide
   * exactly what placing them one at a time does, each on a snapshot that holds the ones before
   * it as pending on their host (room, disk, affinity, anti-affinity and HA admission alike).
   */
  it('decides what one-at-a-time placement on updated snapshots decides', () => {
    fc.assert(
      fc.property(fc.array(wantedWorkload, { minLength: 1, maxLength: 14 }), fc.constantFrom<'spread' | 'binpack'>('spread', 'binpack'), fc.boolean(), (wanted, mode, admission) => {
        const p = { ...DEFAULT_PLACEMENT_POLICY, mode, haAdmission: admission };
        const cluster: ClusterSnapshot = { hosts: hosts({ h1: 16, h2: 12, h3: 8, h4: 8 }), workloads: [on('h1', spec('old', 4))] };
        const specs = batchSpecs(wanted);
        const placer = new Placer(cluster, p, specs);
        let sequential = cluster;
        specs.forEach((s, k) => {
          const alone = placeWorkload(s, sequential, p);
          const batched = placer.place(k);
          // the same decision and refusals; an anti-affinity refusal may be worded differently
          // (one-at-a-time sees the earlier workload as a reservation, the batch as a resident)
          const same = (r: PlacementResult) => ({ ...r, refusals: r.refusals.map((x) => (x.code === 'ANTI_AFFINITY' ? { ...x, message: '' } : x)) });
          expect(same(batched)).toEqual(same(alone));
          if (alone.ok) sequential = { ...sequential, workloads: [...sequential.workloads, on(alone.decision.hostId, s, 'pending')] };
        });
      }),
      { numRuns: 150 },
    );
  });
});

describe('a placer given more workloads as they come (Placer.add)', () => {
  /**
   * The API's HA admission keeps one placer for successive batches of creates: workloads given in
   * several add() calls, each batch decided before the next is added, must be decided exactly as
   * one placer given them all at once decides them.
   */
  it('decides what one placer given every workload at once decides', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ w: wantedWorkload, cut: fc.boolean() }), { minLength: 1, maxLength: 14 }),
        fc.constantFrom<'spread' | 'binpack'>('spread', 'binpack'),
        fc.boolean(),
        (wanted, mode, admission) => {
          const p = { ...DEFAULT_PLACEMENT_POLICY, mode, haAdmission: admission };
          const cluster: ClusterSnapshot = { hosts: hosts({ h1: 16, h2: 12, h3: 8, h4: 8 }), workloads: [on('h1', spec('old', 4))] };
          const specs = batchSpecs(wanted.map((x) => x.w));
          const atOnce = new Placer(cluster, p, specs);
          const expected = specs.map((_, k) => atOnce.place(k));
          // batches cut where `cut` says: the first batch makes the placer, the others are added
          const batches: WorkloadSpec[][] = [[]];
          wanted.forEach((w, i) => {
            if (w.cut && batches.at(-1)!.length > 0) batches.push([]);
            batches.at(-1)!.push(specs[i]!);
          });
          const grown = new Placer(cluster, p, batches[0]!);
          const decided = batches[0]!.map((_, k) => grown.place(k));
          for (const batch of batches.slice(1)) {
            const first = grown.add(batch);
            expect(first).toBe(decided.length);
            batch.forEach((_, k) => decided.push(grown.place(first + k)));
          }
          expect(grown.size).toBe(specs.length);
          expect(decided).toEqual(expected);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('refuses more workloads on a placer of a migration', () => {
    const cluster: ClusterSnapshot = { hosts: hosts({ h1: 16, h2: 12 }), workloads: [] };
    const placer = new Placer(cluster, policy, [spec('m', 1)], { migrating: { cpu: cluster.hosts[0]!.capacity.cpu, from: 'h1' } });
    expect(() => placer.add([spec('n', 1)])).toThrow(/only a placer of new workloads/);
  });
});

describe('restart targets of one failover, decided on one model (restartTargets)', () => {
  /**
   * A failover decides where each of a dead host's HA workloads restarts, highest priority first,
   * on one model of the cluster: exactly what deciding them one at a time does, each on a snapshot
   * where the earlier ones already run on their new host (what the failover writes before the next).
   */
  it('decides what one-at-a-time restarts on updated snapshots decide', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ gib: fc.integer({ min: 1, max: 7 }), pool: fc.constantFrom('local', 'shared', 'shared', 'shared'), pin: fc.constantFrom('', 'h2', 'h3') }), {
          minLength: 1,
          maxLength: 12,
        }),
        fc.constantFrom<'spread' | 'binpack'>('spread', 'binpack'),
        (dying, mode) => {
          const p = { ...DEFAULT_PLACEMENT_POLICY, mode };
          const victims = dying.map((d, i) => {
            const s = spec(`v${i}`, d.gib, true, d.pool);
            return on('h1', d.pin ? { ...s, placement: { ...s.placement, hosts: [d.pin] } } : s);
          });
          const cluster: ClusterSnapshot = { hosts: hosts({ h1: 64, h2: 12, h3: 10, h4: 8 }), workloads: [...victims, on('h2', spec('resident', 4, false))] };
          const batched = restartTargets(victims, 'h1', cluster, p);
          let sequential = cluster;
          victims.forEach((victim, k) => {
            const alone = restartTarget(victim, 'h1', sequential, p);
            expect(batched[k]).toEqual(alone);
            if (alone.ok)
              sequential = {
                ...sequential,
                workloads: sequential.workloads.map((w) => (w.spec.id === victim.spec.id ? { ...w, hostId: alone.to, epoch: w.epoch + 1, phase: 'starting' as const } : w)),
              };
          });
        },
      ),
      { numRuns: 150 },
    );
  });
});
