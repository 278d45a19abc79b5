import { describe, expect, it } from 'vitest';
import { PlanningState, Usage, cloneCluster, type PlanCluster, type PlanHost, type PlanPool, type PlanWorkload } from './model.ts';
import { cpuFlagsPresent, firstRefusal as moveRefusal } from '../feasibility.ts';
import { COMPONENT_NAMES, ClusterScore } from './score.ts';
import { SCORE_TERMS } from '@ferry/protocol';
import { STOPPED, planRebalance } from './rebalance.ts';
import { DestinationIndex } from './candidates.ts';
import { GAIN_EPSILON } from './gain.ts';
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

describe('cluster score, halved', () => {
  it('prepare + afterTo gives after() to the bit, overcommitted, clashing, draining and counting heads too', () => {
    for (let seed = 1; seed <= 20; seed++) {
      // overloaded hosts (overcommit), anti-affinity pairs, a draining host, the instance term on
      const cluster = generateCluster({ hosts: 10, perHost: [5, 30], overloaded: 0.4, seed });
      cluster.hosts[seed % 10] = { ...cluster.hosts[seed % 10]!, accepting: false, draining: true };
      const usage = new Usage(cluster);
      const score = new ClusterScore(cluster, usage, { instances: 0.5 });
      const rnd = random(seed);
      for (let i = 0; i < 40; i++) {
        const index = Math.floor(rnd() * cluster.workloads.length);
        score.prepare(index);
        for (let to = 0; to < cluster.hosts.length; to++) if (to !== cluster.workloads[index]!.host) expect(score.afterTo(to)).toBe(score.after(index, to));
        const to = Math.floor(rnd() * cluster.hosts.length);
        if (to !== cluster.workloads[index]!.host) score.apply(index, to);
      }
    }
  });

  it('the API names the same terms the score has', () => {
    expect([...SCORE_TERMS].sort()).toEqual([...COMPONENT_NAMES].sort());
  });
});

describe('rebalancing (property tests on random clusters)', () => {
  it('ends lower than it started, every plan is feasible step by step, components sum to the score, and the same input gives the same plan', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const cluster = generateCluster({ hosts: 16, perHost: [5, 25], seed });
      const plan = planRebalance(cluster, { maxMoves: 30 });
      if (plan.moves.length > 0) expect(plan.scoreAfter).toBeLessThan(plan.scoreBefore);
      expect(plan.moves.at(-1)?.score ?? plan.scoreBefore).toBeCloseTo(plan.scoreAfter, 12);
      expect(planProblems(cluster, plan.moves)).toEqual([]);
      expect(plan.moves.length).toBeLessThanOrEqual(30);
      const sum = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
      expect(sum(plan.components.before)).toBeCloseTo(plan.scoreBefore, 9);
      expect(sum(plan.components.after)).toBeCloseTo(plan.scoreAfter, 9);
      expect(planRebalance(cluster, { maxMoves: 30 })).toEqual(plan); // the dry run is the plan
    }
  }, 30_000);

  it('takes only moves of strictly positive gain, each lowering the score (the search itself, before the prune)', () => {
    for (let seed = 1; seed <= 8; seed++) {
      const cluster = generateCluster({ hosts: 12, perHost: [3, 15], seed });
      const plan = planRebalance(cluster, { maxMoves: 200, minGain: 0, moveCost: 0, moveCostPerGiB: 0, polish: false, prune: false });
      let previous = plan.scoreBefore;
      for (const move of plan.moves) {
        expect(previous - move.score).toBeGreaterThan(GAIN_EPSILON);
        previous = move.score;
      }
    }
  });

  it('runs to convergence: afterwards no single feasible move lowers the score', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const cluster = generateCluster({ hosts: 10, perHost: [3, 15], seed });
      const plan = planRebalance(cluster, { maxMoves: Infinity, moveCost: 0, moveCostPerGiB: 0, polish: false, prune: false });
      expect(plan.stopped).toBe(STOPPED.converged);
      const after = cloneCluster(cluster);
      const byId = new Map(after.workloads.map((w, i) => [w.id, i]));
      const hostIndex = new Map(after.hosts.map((h, i) => [h.id, i]));
      for (const m of plan.moves) after.workloads[byId.get(m.workload)!]!.host = hostIndex.get(m.to)!;
      const usage = new Usage(after);
      const score = new ClusterScore(after, usage);
      const now = score.value();
      after.workloads.forEach((w, i) => {
        for (let to = 0; to < after.hosts.length; to++) {
          if (to === w.host || w.pinned || moveRefusal(after, usage, i, to) !== null) continue;
          expect(now - score.after(i, to)).toBeLessThanOrEqual(GAIN_EPSILON);
        }
      });
    }
  });

  it('never ping-pongs with minGain 0: a move that changes nothing is not a move', () => {
    // One workload on one of two identical hosts. Moving it mirrors the cluster: the score does not
    // change, so the old search (which took any move with gain >= minGain) moved it to the other
    // host and back, every step, to the end of its budget, reporting each as lowering the score.
    const cluster = modelOf([host('a'), host('b')], [workload('w', 0, { mem: 8 * GiB })]);
    const score = new ClusterScore(cluster, new Usage(cluster));
    expect(score.value() - score.after(0, 1)).toBeCloseTo(0, 15); // the zero-gain move exists
    const plan = planRebalance(cluster, { minGain: 0, moveCost: 0, moveCostPerGiB: 0, maxMoves: 1000 });
    expect(plan.moves).toEqual([]);
    expect(plan.stopped).toBe(STOPPED.converged);
    // and on random clusters no move undoes the one before it, and the score falls at every step
    for (let seed = 1; seed <= 8; seed++) {
      const plan = planRebalance(generateCluster({ hosts: 12, perHost: [3, 15], seed }), { maxMoves: 300, minGain: 0, moveCost: 0, moveCostPerGiB: 0, polish: false, prune: false });
      plan.moves.forEach((m, i) => {
        const previous = plan.moves[i - 1];
        if (previous) expect(previous.workload === m.workload && previous.from === m.to && previous.to === m.from).toBe(false);
        expect(m.score).toBeLessThan(previous?.score ?? plan.scoreBefore);
      });
      expect(plan.stopped).toBe(STOPPED.converged);
    }
  });

  it('polish: swaps two workloads where no single move helps', () => {
    // a holds 8 + 6 GiB, b 6 + 4 GiB, 24 GiB each: every single move leaves them at least as uneven
    // (or does not fit), but trading a 6 GiB workload of a for the 4 GiB one of b (or the 8 for the 6) evens them
    const hosts = [host('a', { memTotal: 24 * GiB }), host('b', { memTotal: 24 * GiB })];
    const cluster = modelOf(hosts, [workload('a8', 0, { mem: 8 * GiB }), workload('a6', 0, { mem: 6 * GiB }), workload('b6', 1, { mem: 6 * GiB }), workload('b4', 1, { mem: 4 * GiB })]);
    expect(planRebalance(cluster, { polish: false }).moves).toEqual([]);
    const plan = planRebalance(cluster);
    expect(plan.moves).toHaveLength(2);
    expect(plan.moves.map((m) => `${m.from}→${m.to}`).sort()).toEqual(['a→b', 'b→a']);
    expect(plan.moves[0]!.reason).toContain('swap');
    expect(plan.scoreAfter).toBeLessThan(plan.scoreBefore);
    expect(plan.components.after.mem).toBeCloseTo(0, 9);
    expect(planProblems(cluster, plan.moves)).toEqual([]);
  });

  it('polish: makes the plan better, not longer — or adds moves only as valuable as the last single move', () => {
    // the bench's 10-host cluster: the polish's 6 swaps used to take the plan from 18 moves to 28
    // (a lower score than the full greedy search, but more moves than it: bench/RESULTS.md)
    const tenHosts = new PlanningState(generateCluster({ hosts: 10, perHost: [20, 20], workloads: 200, seed: 42 }));
    const single = planRebalance(tenHosts, { polish: false });
    const polished = planRebalance(tenHosts);
    const unbounded = planRebalance(tenHosts, { polishKeepsLength: false });
    expect(unbounded.moves.length).toBeGreaterThan(single.moves.length); // the case the rule is for
    expect(polished.moves.length).toBeLessThanOrEqual(single.moves.length);
    expect(polished.scoreAfter).toBeLessThan(single.scoreAfter);
    expect(planProblems(tenHosts.cluster, polished.moves)).toEqual([]);
    // on random clusters the polish never ends higher than the single-move search, and where it
    // adds moves each gains at least what the single-move search's last move did
    for (let seed = 1; seed <= 12; seed++) {
      const state = new PlanningState(generateCluster({ hosts: 8, perHost: [4, 16], seed }));
      const a = planRebalance(state, { polish: false, prune: false });
      const b = planRebalance(state);
      expect(b.scoreAfter).toBeLessThanOrEqual(a.scoreAfter + 1e-12);
      expect(planProblems(state.cluster, b.moves)).toEqual([]);
      const extra = b.moves.length - a.moves.length;
      if (extra > 0 && a.moves.length > 0) {
        const last = a.moves.at(-1)!;
        const lastGain = (a.moves.at(-2)?.score ?? a.scoreBefore) - last.score;
        expect((a.scoreAfter - b.scoreAfter) / extra).toBeGreaterThanOrEqual(lastGain - 1e-12);
      }
    }
  });
  it('gives an empty plan for a balanced cluster', () => {
    const cluster = modelOf([host('a'), host('b'), host('c')], [workload('1', 0), workload('2', 1), workload('3', 2)]);
    const plan = planRebalance(cluster);
    expect(plan.moves).toEqual([]);
    expect(plan.stopped).toBe(STOPPED.converged);
  });

  it('moves the fewest bytes for the same gain: a shared-pool workload before a local one', () => {
    const shared = new Map([
      ['local', { shared: false }],
      ['shared', { shared: true }],
    ]);
    const cluster = modelOf([host('a', { pools: shared }), host('b', { pools: shared })], [workload('local', 0), workload('onshared', 0, { pool: 'shared' }), workload('x', 0)]);
    // disk not weighed: both moves gain the same, and the per-GiB cost decides
    const plan = planRebalance(cluster, { maxMoves: 1, weights: { disk: 0 } });
    expect(plan.moves.map((m) => m.workload)).toEqual(['onshared']);
  });

  it('names the components of the score; the instance count is off by default and weighs when asked', () => {
    const cluster = modelOf(
      [host('a'), host('b')],
      [workload('1', 0, { mem: 1 * GiB, cpu: 1, disk: 1 * GiB }), workload('2', 0, { mem: 1 * GiB, cpu: 1, disk: 1 * GiB }), workload('3', 1, { mem: 2 * GiB, cpu: 2, disk: 2 * GiB })],
    );
    const plain = new ClusterScore(cluster, new Usage(cluster));
    expect(Object.keys(plain.components()).sort()).toEqual(['antiAffinity', 'cpu', 'disk', 'draining', 'instances', 'mem', 'overcommit']);
    expect(plain.components().instances).toBe(0);
    expect(plain.value()).toBeCloseTo(0, 12); // resources even
    const counted = new ClusterScore(cluster, new Usage(cluster), { instances: 1 });
    expect(counted.components().instances).toBeGreaterThan(0); // two workloads against one
    expect(Object.values(counted.components()).reduce((a, b) => a + b, 0)).toBeCloseTo(counted.value(), 12);
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

  it('the cost of moving is a penalty on gain that changes which move is taken, and whether any is', () => {
    // a holds 8 + 7 GiB (and a pinned 1 GiB), b nothing: moving the 8 GiB workload evens them out,
    // moving the 7 GiB one nearly does — but the 8 GiB one drags a 200 GiB root filesystem along
    const cluster = modelOf(
      [host('a'), host('b')],
      [
        workload('big', 0, { mem: 8 * GiB, cpu: 4, disk: 200 * GiB }),
        workload('small', 0, { mem: 7 * GiB, cpu: 3.5, disk: 1 * GiB }),
        workload('fixed', 0, { mem: 1 * GiB, cpu: 0.5, disk: 1 * GiB, pinned: true }),
      ],
    );
    const weights = { disk: 0 }; // disk not weighed: the gain is memory and CPU only
    const free = planRebalance(cluster, { weights, moveCost: 0, moveCostPerGiB: 0 });
    expect(free.moves.map((m) => m.workload)).toEqual(['big']);
    const perGiB = planRebalance(cluster, { weights, moveCost: 0, moveCostPerGiB: 0.001 });
    expect(perGiB.moves.map((m) => m.workload)).toEqual(['small']);
    expect(perGiB.scoreAfter).toBeGreaterThan(free.scoreAfter); // a little less even, 200 GiB less copied
    // a fixed cost above what any move gains: nothing is worth moving
    const gainOfBest = free.scoreBefore - free.scoreAfter;
    const n = 2; // the cost is per accepting host: (moveCost + …) / n
    expect(planRebalance(cluster, { weights, moveCost: gainOfBest * n * 1.01, moveCostPerGiB: 0 }).moves).toEqual([]);
    expect(planRebalance(cluster, { weights, moveCost: gainOfBest * n * 0.99, moveCostPerGiB: 0 }).moves.map((m) => m.workload)).toEqual(['big']);
  });

  it('stops at its move budget, saying so, and runs to convergence without one', () => {
    const cluster = generateCluster({ hosts: 30, perHost: [10, 20], seed: 9 });
    const budgeted = planRebalance(cluster, { maxMoves: 5 });
    expect(budgeted.stopped).toBe(STOPPED.moves);
    expect(budgeted.moves.length).toBeGreaterThan(0);
    expect(budgeted.moves.length).toBeLessThanOrEqual(5);
    const converged = planRebalance(cluster, { maxMoves: Infinity });
    expect(converged.stopped).toBe(STOPPED.converged);
    expect(converged.moves.length).toBeGreaterThan(5);
    expect(converged.scoreAfter).toBeLessThan(budgeted.scoreAfter);
    // the default: converged within the API's cap of 1,000 moves and the 10 s time budget
    const byDefault = planRebalance(cluster);
    expect(byDefault.stopped).toBe(STOPPED.converged);
    expect(byDefault.moves).toEqual(converged.moves);
  });

  it('stays in its time budget', () => {
    const plan = planRebalance(generateCluster({ hosts: 200, perHost: [20, 40], seed: 3 }), { maxMoves: Infinity, timeBudgetMs: 0 });
    expect(plan.stopped).toBe(STOPPED.time);
    expect(plan.moves).toEqual([]);
  });
});

describe('the destination index', () => {
  it('keeps every accepting host in each of its lists through any moves, once', () => {
    const cluster = generateCluster({ hosts: 40, perHost: [3, 10], olderCpu: 0.3, seed: 5 });
    const usage = new Usage(cluster);
    const score = new ClusterScore(cluster, usage);
    const index = new DestinationIndex(cluster, usage, score);
    const rnd = random(5);
    for (let i = 0; i < 200; i++) {
      const w = Math.floor(rnd() * cluster.workloads.length);
      const to = Math.floor(rnd() * cluster.hosts.length);
      const from = cluster.workloads[w]!.host;
      if (to === from) continue;
      score.apply(w, to);
      index.update(from);
      index.update(to);
      if (i % 50 === 0) index.refresh();
    }
    const all = index.leastLoaded(1e9);
    expect(new Set(all).size).toBe(all.length);
    expect([...all].sort((a, b) => a - b)).toEqual(cluster.hosts.map((_, i) => i));
    // a workload is offered only hosts its static checks allow (here: its CPU's flags)
    for (let w = 0; w < cluster.workloads.length; w += 7) {
      for (const h of index.destinations(w, 1e9)) expect(cpuFlagsPresent(cluster, usage, w, h)).toBeNull();
    }
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
        { workload: '1', refused: { MEMORY_INSUFFICIENT: 1, NETWORK_MISSING: 1 }, reason: expect.stringContaining('MEMORY_INSUFFICIENT ×1 (b: needs 4096 MiB, 2048 MiB unallocated)') },
        { workload: '2', refused: { MEMORY_INSUFFICIENT: 1, NETWORK_MISSING: 1 }, reason: expect.stringContaining('NETWORK_MISSING ×1 (c: not attached to prod)') },
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
