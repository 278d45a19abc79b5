import { describe, expect, it } from 'vitest';
import { PlanningState, Usage, type PlanCluster, type PlanHost, type PlanPool, type PlanWorkload } from './model.ts';
import { firstRefusal as moveRefusal } from '../feasibility.ts';
import { ClusterScore } from './score.ts';
import { planRebalance } from './rebalance.ts';
import { planEvacuation } from './evacuate.ts';
import { maintenanceGroups } from './groups.ts';
import { RebalanceTrigger } from './trigger.ts';
import { planProblems } from './feasibility.ts';
import { generateCluster, random } from './generate.ts';

const GiB = 2 ** 30;

/** A host as tests describe it: its pools by id, local or shared (a local pool holds `diskTotal`). */
type TestHost = Omit<PlanHost, 'pools'> & { pools: Map<string, { shared: boolean }> };

const host = (id: string, over: Partial<TestHost> = {}): TestHost => ({
  id,
  state: 'up',
  accepting: true,
  draining: false,
  memTotal: 64 * GiB,
  cpuTotal: 64,
  diskTotal: 1024 * GiB,
  cpuVendor: 'AuthenticAMD',
  cpuFamily: 25,
  cpuFlags: new Set(['fpu', 'avx2']),
  networks: new Set(['prod']),
  templates: new Set(),
  pools: new Map([['local', { shared: false }]]),
  live: true,
  ...over,
});

const workload = (id: string, hostIndex: number, over: Partial<PlanWorkload> = {}): PlanWorkload => ({
  id,
  host: hostIndex,
  mem: 4 * GiB,
  cpu: 2,
  disk: 10 * GiB,
  networks: ['prod'],
  pool: 'local',
  antiAffinity: [],
  cpuNeeds: { vendor: 'AuthenticAMD', family: 25, flags: ['fpu', 'avx2'] },
  running: true,
  template: null,
  haPriority: 0,
  allowed: null,
  pinned: false,
  ...over,
});

/** The model of test hosts: a local pool per host (its diskTotal), one storage per shared pool id (room enough). */
function modelOf(hosts: TestHost[], workloads: PlanWorkload[]): PlanCluster {
  const pools: PlanPool[] = [];
  const sharedSlot = new Map<string, number>();
  const planHosts: PlanHost[] = hosts.map((h) => {
    const slots = new Map<string, number>();
    for (const [id, { shared }] of h.pools) {
      let slot = shared ? sharedSlot.get(id) : undefined;
      if (slot === undefined) slot = pools.push({ id, shared, total: shared ? Number.POSITIVE_INFINITY : h.diskTotal, other: 0 }) - 1;
      if (shared) sharedSlot.set(id, slot);
      slots.set(id, slot);
    }
    return { ...h, pools: slots, diskTotal: [...slots.values()].reduce((sum, slot) => sum + (pools[slot]!.shared ? 0 : pools[slot]!.total), 0) };
  });
  return { hosts: planHosts, workloads, pools };
}

describe('move checks: every reason code', () => {
  const cluster = modelOf(
    [
      host('src'),
      host('ok'),
      host('down', { state: 'down', accepting: false }),
      host('maint', { accepting: false, draining: true }),
      host('intel', { cpuVendor: 'GenuineIntel' }),
      host('zen2', { cpuFamily: 23 }),
      host('old', { cpuFlags: new Set(['fpu']) }),
      host('nonet', { networks: new Set() }),
      host('nopool', { pools: new Map() }),
      host('tiny', { memTotal: 2 * GiB }),
      host('fewcpu', { cpuTotal: 1 }),
      host('smalldisk', { diskTotal: 1 * GiB }),
      host('nocriu', { live: false }),
      host('mate'),
    ],
    [workload('w', 0, { antiAffinity: ['db'] }), workload('mate', 13, { antiAffinity: ['db'] }), workload('pinned', 0, { allowed: new Set(['src']) })],
  );
  const usage = new Usage(cluster);
  const why = (to: string, w = 0) =>
    moveRefusal(
      cluster,
      usage,
      w,
      cluster.hosts.findIndex((h) => h.id === to),
    );

  it.each([
    ['ok', null],
    ['src', 'SAME_HOST'],
    ['down', 'HOST_DOWN'],
    ['maint', 'HOST_IN_MAINTENANCE'],
    ['intel', 'CPU_VENDOR_MISMATCH'],
    ['zen2', 'CPU_FAMILY_MISMATCH'],
    ['old', 'CPU_FLAGS_MISSING'],
    ['nonet', 'NETWORK_MISSING'],
    ['nopool', 'STORAGE_POOL_MISSING'],
    ['tiny', 'MEMORY_INSUFFICIENT'],
    ['fewcpu', 'CPU_INSUFFICIENT'],
    ['smalldisk', 'DISK_INSUFFICIENT'],
    ['nocriu', 'CRIU_UNSUPPORTED'],
    ['mate', 'ANTI_AFFINITY'],
  ])('to %s: %s', (to, code) => {
    expect(why(to)).toBe(code);
  });

  it('NOT_ALLOWED for hosts outside the allowed set', () => {
    expect(why('ok', 2)).toBe('NOT_ALLOWED');
  });
});

describe('cluster score', () => {
  it('is zero for an even, clean cluster and grows with imbalance and violations', () => {
    const even = modelOf([host('a'), host('b')], [workload('1', 0), workload('2', 1)]);
    expect(new ClusterScore(even, new Usage(even)).value()).toBeCloseTo(0, 9);
    const skewed = modelOf([host('a'), host('b')], [workload('1', 0), workload('2', 0)]);
    expect(new ClusterScore(skewed, new Usage(skewed)).value()).toBeGreaterThan(0.05);
  });

  it('computes the effect of a move exactly as a full recomputation would (random clusters)', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const cluster = generateCluster({ hosts: 12, perHost: [3, 12], seed });
      const usage = new Usage(cluster);
      const score = new ClusterScore(cluster, usage);
      const rnd = random(seed);
      for (let i = 0; i < 30; i++) {
        const index = Math.floor(rnd() * cluster.workloads.length);
        const to = Math.floor(rnd() * cluster.hosts.length);
        if (cluster.workloads[index]!.host === to) continue;
        const predicted = score.after(index, to);
        score.apply(index, to);
        expect(score.value()).toBeCloseTo(predicted, 9);
        expect(score.value()).toBeCloseTo(new ClusterScore(cluster, new Usage(cluster)).value(), 9);
      }
    }
  });
});

describe('rebalancing (property tests on random clusters)', () => {
  it('never raises the score, every plan is feasible step by step, and the same input gives the same plan', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const cluster = generateCluster({ hosts: 16, perHost: [5, 25], seed });
      const plan = planRebalance(cluster, { maxMoves: 30 });
      expect(plan.scoreAfter).toBeLessThanOrEqual(plan.scoreBefore + 1e-12);
      let previous = plan.scoreBefore;
      for (const move of plan.moves) {
        expect(move.score).toBeLessThan(previous);
        previous = move.score;
      }
      expect(planProblems(cluster, plan.moves)).toEqual([]);
      expect(planRebalance(cluster, { maxMoves: 30 })).toEqual(plan); // the dry run is the plan
    }
  }, 30_000);

  it('gives an empty plan for a balanced cluster', () => {
    const cluster = modelOf([host('a'), host('b'), host('c')], [workload('1', 0), workload('2', 1), workload('3', 2)]);
    const plan = planRebalance(cluster);
    expect(plan.moves).toEqual([]);
    expect(plan.stopped).toBe('no move gains enough');
  });

  it('moves the fewest bytes for the same gain: a shared-pool workload before a local one', () => {
    const shared = new Map([
      ['local', { shared: false }],
      ['shared', { shared: true }],
    ]);
    const cluster = modelOf([host('a', { pools: shared }), host('b', { pools: shared })], [workload('local', 0), workload('onshared', 0, { pool: 'shared' }), workload('x', 0)]);
    const plan = planRebalance(cluster, { maxMoves: 1 });
    expect(plan.moves.map((m) => m.workload)).toEqual(['onshared']);
  });

  it('breaks anti-affinity clashes and never moves pinned workloads', () => {
    const cluster = modelOf(
      [host('a'), host('b'), host('c')],
      [workload('db1', 0, { antiAffinity: ['db'] }), workload('db2', 0, { antiAffinity: ['db'], pinned: true }), workload('y', 1), workload('z', 2)],
    );
    const plan = planRebalance(cluster);
    expect(plan.moves[0]).toMatchObject({ workload: 'db1', from: 'a' });
    expect(plan.moves.some((m) => m.workload === 'db2')).toBe(false);
  });
});

describe('a shared planning state', () => {
  it('is left exactly as it was by every plan made on it', () => {
    const cluster = generateCluster({ hosts: 20, perHost: [5, 25], seed: 7 });
    const state = new PlanningState(cluster);
    const hostsBefore = cluster.workloads.map((w) => w.host);
    const memBefore = [...state.usage.mem];
    planRebalance(state, { maxMoves: 20 });
    planEvacuation(state, [cluster.hosts[3]!.id], { keepHaCapacity: false });
    expect(cluster.workloads.map((w) => w.host)).toEqual(hostsBefore);
    expect([...state.usage.mem].map((v, i) => Math.abs(v - memBefore[i]!) < 1)).toEqual(memBefore.map(() => true));
    expect(planRebalance(state, { maxMoves: 20 })).toEqual(planRebalance(cluster, { maxMoves: 20 }));
  });
});

describe('evacuation', () => {
  it('empties the host, HA first, feasibly, honouring anti-affinity (random clusters)', () => {
    for (let seed = 1; seed <= 25; seed++) {
      const cluster = generateCluster({ hosts: 30, perHost: [5, 30], overloaded: 0, seed });
      const victim = cluster.hosts[seed % 30]!.id;
      const plan = planEvacuation(cluster, [victim], { keepHaCapacity: false });
      if (!plan.ok) continue; // some generated clusters cannot take a host out; covered below
      const leaving = cluster.workloads.filter((w) => cluster.hosts[w.host]!.id === victim).map((w) => w.id);
      expect(plan.moves.map((m) => m.workload).sort()).toEqual(leaving.sort());
      const drained: PlanCluster = { ...cluster, hosts: cluster.hosts.map((h) => (h.id === victim ? { ...h, accepting: false, draining: true } : h)) };
      expect(planProblems(drained, plan.moves)).toEqual([]);
      const ha = plan.moves.map((m) => cluster.workloads.find((w) => w.id === m.workload)!.haPriority);
      expect([...ha].sort((a, b) => b - a)).toEqual(ha);
    }
  });

  it('refuses, moving nothing, when the rest cannot take the workloads — with every reason', () => {
    const cluster = modelOf([host('a'), host('b', { memTotal: 6 * GiB }), host('c', { networks: new Set() })], [workload('1', 0), workload('2', 0), workload('b1', 1)]);
    const plan = planEvacuation(cluster, ['a'], { keepHaCapacity: false });
    expect(plan.ok).toBe(false);
    expect(plan.moves).toEqual([]);
    if (!plan.ok)
      expect(plan.unplaced).toEqual([
        { workload: '1', refused: { MEMORY_INSUFFICIENT: 1, NETWORK_MISSING: 1 } },
        { workload: '2', refused: { MEMORY_INSUFFICIENT: 1, NETWORK_MISSING: 1 } },
      ]);
  });

  it('keeps room to restart any single host’s HA workloads', () => {
    const cluster = modelOf(
      [host('a', { memTotal: 16 * GiB }), host('b', { memTotal: 16 * GiB }), host('c', { memTotal: 16 * GiB })],
      [workload('ha1', 0, { haPriority: 5, mem: 6 * GiB }), workload('ha2', 1, { haPriority: 5, mem: 6 * GiB }), workload('ha3', 2, { haPriority: 5, mem: 6 * GiB })],
    );
    const plan = planEvacuation(cluster, ['a']);
    expect(plan).toMatchObject({ ok: false, reason: expect.stringContaining('could not restart the HA workloads') });
    expect(planEvacuation(cluster, ['a'], { keepHaCapacity: false }).ok).toBe(true);
  });

  it('packs instead of spreading when asked', () => {
    const cluster = modelOf([host('a'), host('b'), host('full')], [workload('1', 0), workload('f', 2, { mem: 50 * GiB, cpu: 1, disk: 1 })]);
    expect(planEvacuation(cluster, ['a'], { mode: 'spread', keepHaCapacity: false })).toMatchObject({ ok: true, moves: [{ to: 'b' }] });
    expect(planEvacuation(cluster, ['a'], { mode: 'binpack', keepHaCapacity: false })).toMatchObject({ ok: true, moves: [{ to: 'full' }] });
  });
});

describe('maintenance groups', () => {
  it('groups hosts that can be drained together, each group feasible, every host once', () => {
    const cluster = modelOf(
      [host('a'), host('b'), host('c'), host('d'), host('e')],
      [workload('1', 0, { mem: 30 * GiB }), workload('2', 1, { mem: 30 * GiB }), workload('3', 2, { mem: 10 * GiB }), workload('4', 3, { mem: 10 * GiB })],
    );
    const result = maintenanceGroups(cluster, { keepHaCapacity: false });
    expect(result.cannotDrain).toEqual([]);
    expect(result.groups.flat().sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
    for (const group of result.groups) expect(planEvacuation(cluster, group, { keepHaCapacity: false }).ok).toBe(true);
    // fewer groups than hosts, and never all at once (someone must take the workloads)
    expect(result.groups.length).toBeLessThan(5);
    expect(result.groups.some((g) => g.length === 5)).toBe(false);
  });

  it('never puts two hosts in one group when the others cannot take both', () => {
    const cluster = modelOf([host('a'), host('b'), host('c')], [workload('1', 0, { mem: 30 * GiB }), workload('2', 1, { mem: 30 * GiB }), workload('3', 2, { mem: 10 * GiB })]);
    expect(maintenanceGroups(cluster, { keepHaCapacity: false }).groups).toEqual([['a'], ['b'], ['c']]);
  });

  it('names hosts that cannot be drained at all', () => {
    const cluster = modelOf([host('a'), host('b', { memTotal: 2 * GiB })], [workload('big', 0, { mem: 40 * GiB })]);
    const result = maintenanceGroups(cluster, { keepHaCapacity: false });
    expect(result.cannotDrain.map((c) => c.host)).toEqual(['a']);
  });
});

describe('automatic rebalancing hysteresis', () => {
  it('acts only after the imbalance persisted for the given rounds, then starts over', () => {
    const trigger = new RebalanceTrigger(0.1, 3);
    expect([0.2, 0.2, 0.05, 0.2, 0.2, 0.2].map((g) => trigger.observe(g))).toEqual([false, false, false, false, false, true]);
    expect(trigger.pending).toBe(0);
    expect(trigger.observe(0.5)).toBe(false);
  });
});
