import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { firstRefusal } from '../feasibility.ts';
import { Usage, cloneCluster, sharedMove, type PlanCluster, type PlanHost, type PlanPool, type PlanWorkload } from './model.ts';
import { planEvacuation } from './evacuate.ts';
import { planStages, type StagedMove } from './stages.ts';

const GiB = 2 ** 30;

const host = (id: string, memGiB = 16, pools: Array<[string, number]> = [['local', 0]]): PlanHost => ({
  id,
  state: 'up',
  accepting: true,
  draining: false,
  memTotal: memGiB * GiB,
  cpuTotal: 64,
  diskTotal: 1024 * GiB,
  cpuVendor: 'AuthenticAMD',
  cpuFamily: 25,
  cpuFlags: new Set(['fpu']),
  networks: new Set(['prod']),
  templates: new Set(),
  pools: new Map(pools),
  live: true,
});

const workload = (id: string, hostIndex: number, memGiB: number, over: Partial<PlanWorkload> = {}): PlanWorkload => ({
  id,
  host: hostIndex,
  mem: memGiB * GiB,
  cpu: 1,
  disk: GiB,
  networks: ['prod'],
  pool: 'local',
  antiAffinity: [],
  cpuNeeds: null,
  running: true,
  template: null,
  haPriority: 0,
  allowed: null,
  pinned: false,
  ...over,
});

/** Hosts with a local pool each (slot = host index, 1 TiB), plus `extra` pools after them. */
function cluster(hosts: PlanHost[], workloads: PlanWorkload[], extra: PlanPool[] = []): PlanCluster {
  const pools: PlanPool[] = hosts.map((h) => ({ id: `local-${h.id}`, shared: false, total: 1024 * GiB, other: 0 }));
  hosts.forEach((h, i) => {
    if (h.pools.get('local') !== undefined) (h.pools as Map<string, number>).set('local', i);
  });
  return { hosts, workloads, pools: [...pools, ...extra] };
}

const mv = (workload: string, from: string, to: string): StagedMove => ({ workload, from, to });

describe('planStages: which moves of a plan wait for which', () => {
  it('a move into a full host waits for the move that empties it; unrelated moves run with the first', () => {
    // B is full (X, 12 GiB of 16); Y (8 GiB) goes to B once X left; Z moves between C and D
    const c = cluster([host('A'), host('B'), host('C'), host('D')], [workload('Y', 0, 8), workload('X', 1, 12), workload('Z', 2, 4)]);
    const { stage, dependsOn } = planStages(c, [mv('X', 'B', 'C'), mv('Y', 'A', 'B'), mv('Z', 'C', 'D')]);
    expect(stage).toEqual([1, 2, 1]);
    expect(dependsOn).toEqual([[], [0], []]);
    // nothing changed in the cluster given
    expect(c.workloads.map((w) => w.host)).toEqual([0, 1, 2]);
  });

  it('a host with room for both takes the moves in and out together', () => {
    const c = cluster([host('A'), host('B'), host('C')], [workload('Y', 0, 2), workload('X', 1, 4)]);
    expect(planStages(c, [mv('X', 'B', 'C'), mv('Y', 'A', 'B')])).toEqual({ stage: [1, 1], dependsOn: [[], []] });
  });

  it('chains: each waits for the one before, and a workload moved twice moves in order', () => {
    // C full (Z), B full (X): X → A needs nothing; Z → B needs X gone; W → C needs Z gone; then X again
    const c = cluster([host('A'), host('B'), host('C'), host('D')], [workload('X', 1, 12), workload('Z', 2, 12), workload('W', 3, 8)]);
    const { stage, dependsOn } = planStages(c, [mv('X', 'B', 'A'), mv('Z', 'C', 'B'), mv('W', 'D', 'C'), mv('X', 'A', 'D')]);
    // X's second move needs its first, and W gone from D (W itself waits for Z)
    expect(stage).toEqual([1, 2, 3, 4]);
    expect(dependsOn).toEqual([[], [0], [1], [0, 2]]);
  });

  it('depends only on the moves it cannot do without', () => {
    // B holds S1 (2 GiB) and L (10 GiB): Y (8 GiB) needs L gone, not S1
    const c = cluster([host('A'), host('B'), host('C')], [workload('Y', 0, 8), workload('S1', 1, 2), workload('L', 1, 10)]);
    const { stage, dependsOn } = planStages(c, [mv('S1', 'B', 'C'), mv('L', 'B', 'C'), mv('Y', 'A', 'B')]);
    expect(stage).toEqual([1, 1, 2]);
    expect(dependsOn[2]).toEqual([1]);
  });

  it('keeps every candidate when no single one suffices', () => {
    // B holds two of 6 GiB; Y (8 GiB) needs either one gone: neither alone is necessary, both are kept
    const c = cluster([host('A'), host('B'), host('C')], [workload('Y', 0, 8), workload('P', 1, 6), workload('Q', 1, 6)]);
    const { stage, dependsOn } = planStages(c, [mv('P', 'B', 'C'), mv('Q', 'B', 'C'), mv('Y', 'A', 'B')]);
    expect(stage).toEqual([1, 1, 2]);
    expect(dependsOn[2]).toEqual([0, 1]);
  });

  it('anti-affinity: a workload of the group must have left first', () => {
    const c = cluster([host('A'), host('B'), host('C')], [workload('g1', 0, 1, { antiAffinity: ['db'] }), workload('g2', 1, 1, { antiAffinity: ['db'] })]);
    const { stage, dependsOn } = planStages(c, [mv('g2', 'B', 'C'), mv('g1', 'A', 'B')]);
    expect(stage).toEqual([1, 2]);
    expect(dependsOn[1]).toEqual([0]);
  });

  it('disk on a shared storage: a copy into it waits for the copy that frees it', () => {
    // A and B mount one storage "san" (slot 3) of 10 GiB, 9 used by X on B; C has its own "san" pool
    const san: PlanPool = { id: 'san', shared: true, total: 10 * GiB, other: 0 };
    const hosts = [
      host('A', 64, [['san', 3]]),
      host('B', 64, [['san', 3]]),
      host('C', 64, [
        ['san', 4],
        ['local', 0],
      ]),
    ];
    const c = cluster(
      hosts,
      [workload('X', 1, 1, { pool: 'san', disk: 9 * GiB }), workload('Y', 2, 1, { pool: 'san', disk: 5 * GiB })],
      [san, { id: 'san', shared: false, total: 100 * GiB, other: 0 }],
    );
    // X leaves the shared storage for C's own; Y comes from C into the shared storage, on A
    const { stage, dependsOn } = planStages(c, [mv('X', 'B', 'C'), mv('Y', 'C', 'A')]);
    expect(stage).toEqual([1, 2]);
    expect(dependsOn[1]).toEqual([0]);
  });

  it('an evacuation is one stage: its moves only arrive', () => {
    const hosts = ['drain', 'a', 'b', 'c'].map((id) => host(id, 64));
    const c = cluster(
      hosts,
      Array.from({ length: 12 }, (_, i) => workload(`w${i}`, 0, 4)),
    );
    const plan = planEvacuation(c, ['drain']);
    expect(plan.ok).toBe(true);
    const { stage, dependsOn } = planStages(c, plan.moves);
    expect(new Set(stage)).toEqual(new Set([1]));
    expect(dependsOn.flat()).toEqual([]);
  });
});

/**
 * The executions a staging allows, in the worst case: a stage starts once every move of the
 * stages before it ended; its own moves are in flight together, each holding memory, vCPUs,
 * anti-affinity and a copy of its disk on its destination while still on its source. Some moves
 * fail (`failed`); those that depend on one that did not complete never start. Every move that
 * starts must pass firstRefusal on the cluster as it finds it.
 */
function executionProblems(input: PlanCluster, moves: StagedMove[], stage: number[], dependsOn: number[][], failed: ReadonlySet<number>): string[] {
  const hostIndex = new Map(input.hosts.map((h, i) => [h.id, i]));
  const byId = new Map(input.workloads.map((w, i) => [w.id, i]));
  const done = new Map<number, 'completed' | 'not'>();
  const position = input.workloads.map((w) => w.host);
  const problems: string[] = [];
  const stages = [...new Set(stage)].sort((a, b) => a - b);
  for (const s of stages) {
    const here = moves.map((_, i) => i).filter((i) => stage[i] === s);
    const starting = here.filter((i) => dependsOn[i]!.every((k) => done.get(k) === 'completed'));
    for (const i of starting) {
      const c = cloneCluster(input);
      c.workloads.forEach((w, k) => (w.host = position[k]!));
      c.pools = c.pools.map((p) => ({ ...p }));
      c.reservations = [...(input.reservations ?? [])];
      for (const k of starting) {
        if (k === i) continue;
        const wi = byId.get(moves[k]!.workload)!;
        const to = hostIndex.get(moves[k]!.to)!;
        const w = c.workloads[wi]!;
        c.reservations.push({ host: to, mem: w.mem, cpu: w.cpu, antiAffinity: w.antiAffinity });
        const dest = c.hosts[to]!.pools.get(w.pool);
        if (dest !== undefined && !sharedMove(c, wi, to)) c.pools[dest]!.other += w.disk;
      }
      const index = byId.get(moves[i]!.workload)!;
      const why = c.workloads[index]!.host === hostIndex.get(moves[i]!.from) ? firstRefusal(c, new Usage(c), index, hostIndex.get(moves[i]!.to)!) : 'NOT_ON_SOURCE';
      if (why) problems.push(`stage ${s}: move ${i} ${moves[i]!.workload} ${moves[i]!.from} → ${moves[i]!.to}: ${why}`);
    }
    for (const i of here) {
      const ok = starting.includes(i) && !failed.has(i);
      done.set(i, ok ? 'completed' : 'not');
      if (ok) position[byId.get(moves[i]!.workload)!] = hostIndex.get(moves[i]!.to)!;
    }
  }
  return problems;
}

/** Random tight clusters (hosts nearly full, some anti-affinity, one shared storage) and random feasible plans on them. */
const scenario = fc
  .record({
    hosts: fc.integer({ min: 3, max: 6 }),
    sizes: fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 4, maxLength: 20 }),
    groups: fc.array(fc.constantFrom(null, 'g1', 'g2'), { minLength: 20, maxLength: 20 }),
    shared: fc.array(fc.boolean(), { minLength: 20, maxLength: 20 }),
    steps: fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 40 }),
    failures: fc.array(fc.nat(), { maxLength: 4 }),
  })
  .map(({ hosts, sizes, groups, shared, steps, failures }) => {
    const hs = Array.from({ length: hosts }, (_, i) =>
      host(`h${i}`, 16, [
        ['local', 0],
        ['san', hosts],
      ]),
    );
    const san: PlanPool = { id: 'san', shared: true, total: 40 * GiB, other: 0 };
    // first fit: each workload on the first host with room
    const used = new Array<number>(hosts).fill(0);
    const ws: PlanWorkload[] = [];
    sizes.forEach((size, i) => {
      const at = used.findIndex((u) => u + size <= 16);
      if (at < 0) return;
      used[at]! += size;
      const g = groups[i];
      ws.push(workload(`w${i}`, at, size, { antiAffinity: g ? [g] : [], pool: shared[i] ? 'san' : 'local', disk: size * GiB }));
    });
    const c = cluster(hs, ws, [san]);
    // a random walk of feasible single moves: the plan a planner could make, one after another
    const walk = cloneCluster(c);
    const usage = new Usage(walk);
    const moves: StagedMove[] = [];
    for (const [a, b] of steps) {
      if (ws.length === 0) break;
      const index = a % ws.length;
      const to = b % hosts;
      if (firstRefusal(walk, usage, index, to) !== null) continue;
      moves.push({ workload: walk.workloads[index]!.id, from: walk.hosts[walk.workloads[index]!.host]!.id, to: walk.hosts[to]!.id });
      usage.move(index, to);
    }
    return { c, moves, failed: new Set(failures.filter(() => moves.length > 0).map((f) => f % moves.length)) };
  });

describe('planStages, property: every execution it allows finds each starting move feasible', () => {
  it('with every move completing, and with some failing (their dependents never start)', () => {
    fc.assert(
      fc.property(scenario, ({ c, moves, failed }) => {
        const { stage, dependsOn } = planStages(c, moves);
        for (let i = 0; i < moves.length; i++) for (const k of dependsOn[i]!) expect(stage[k]!).toBeLessThan(stage[i]!);
        expect(executionProblems(c, moves, stage, dependsOn, new Set())).toEqual([]);
        expect(executionProblems(c, moves, stage, dependsOn, failed)).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });

  it('runs moves in parallel where it can: fewer stages than moves on a typical chain-free plan', () => {
    const c = cluster(
      ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => host(id, 64)),
      Array.from({ length: 6 }, (_, i) => workload(`w${i}`, i % 3, 4)),
    );
    const moves = [mv('w0', 'a', 'd'), mv('w1', 'b', 'e'), mv('w2', 'c', 'f'), mv('w3', 'a', 'e')];
    expect(planStages(c, moves).stage).toEqual([1, 1, 1, 1]);
  });
});
