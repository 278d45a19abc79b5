import { describe, expect, it } from 'vitest';
import { WorkloadSpec, type PlanMove } from '@ferry/protocol';
import { sampleHostRecord, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { buildEvacuationPlan, buildRebalancePlan, nextPlanStep } from './plans.ts';
import { busyWorkloads, planEvacuation } from './planner/evacuate.ts';
import { planMigration } from './migration.ts';
import { modelFromSnapshot } from './planner/from-snapshot.ts';
import { DEFAULT_PLACEMENT_POLICY } from './placement.ts';
import type { ClusterSnapshot } from './snapshot.ts';

const move = (workload: string, stage: number, dependsOn: number[], over: Partial<PlanMove> = {}): PlanMove => ({
  workload,
  from: 'a',
  to: 'b',
  strategy: 'lazy',
  predicted: { bytes: 0, seconds: 1, freezeMs: 10 },
  reason: 'lowers the score',
  status: 'pending',
  migrationId: null,
  stage,
  dependsOn,
  ...over,
});

describe('nextPlanStep: the stages of an executing plan', () => {
  const plan = [move('x', 1, []), move('z', 1, []), move('y', 2, [0]), move('w', 3, [2]), move('v', 3, [1])];

  it('starts the first stage, then the next once it ended', () => {
    expect(nextPlanStep(plan, false)).toEqual({ cancel: [], start: [0, 1], stage: 1 });
    const ended = plan.map((m, i) => (i < 2 ? { ...m, status: 'completed' as const, migrationId: `m${i}` } : m));
    expect(nextPlanStep(ended, false)).toEqual({ cancel: [], start: [2], stage: 2 });
  });

  it('a failed move cancels its dependents and theirs, saying which; the others still run', () => {
    const ended = plan.map((m, i) => (i === 0 ? { ...m, status: 'failed' as const, migrationId: 'm0' } : i === 1 ? { ...m, status: 'completed' as const, migrationId: 'm1' } : m));
    const step = nextPlanStep(ended, false);
    // y needs x (failed): cancelled; stage 2 has nothing left, so stage 3: w needs y (cancelled), v runs
    expect(step.stage).toBe(3);
    expect(step.start).toEqual([4]);
    expect(step.cancel.map((c) => c.index)).toEqual([2, 3]);
    expect(step.cancel[0]!.reason).toBe('lowers the score; not started: it needs move 1 (x a → b) completed first, and that one failed');
    expect(step.cancel[1]!.reason).toContain('it needs move 3 (y a → b) completed first, and that one cancelled');
  });

  it('a rolled-back or never started dependency cancels too', () => {
    const rolled = plan.map((m, i) => (i < 2 ? { ...m, status: (i === 0 ? 'rolled-back' : 'completed') as PlanMove['status'], migrationId: `m${i}` } : m));
    expect(nextPlanStep(rolled, false).cancel[0]!.reason).toContain('and that one rolled-back');
  });

  it('nothing more starts once the plan is cancelled', () => {
    const step = nextPlanStep(plan, true);
    expect(step).toMatchObject({ start: [], stage: null });
    expect(step.cancel.map((c) => c.index)).toEqual([0, 1, 2, 3, 4]);
    expect(step.cancel[0]!.reason).toContain('not started: the plan was cancelled');
  });

  it('plans made before stages run every move at once; a finished plan has nothing left', () => {
    const old = [0, 1, 2].map((i) => {
      const m = move(`w${i}`, 1, []);
      delete m.stage;
      delete m.dependsOn;
      return m;
    });
    expect(nextPlanStep(old, false)).toEqual({ cancel: [], start: [0, 1, 2], stage: 1 });
    expect(
      nextPlanStep(
        old.map((m) => ({ ...m, status: 'completed' as const })),
        false,
      ),
    ).toEqual({ cancel: [], start: [], stage: null });
  });
});

const spec = (id: string, memoryMiB: number, hosts?: string[]) =>
  WorkloadSpec.parse({
    id,
    template: 'busybox',
    command: ['/bin/sh'],
    resources: { vcpus: 1, memoryMiB, diskMiB: 1024 },
    networks: [{ network: 'prod', address: '10.77.0.5' }],
    pool: 'local',
    ...(hosts ? { placement: { hosts } } : {}),
  });

describe('evacuation: all or nothing, or partial', () => {
  // h1 holds a workload only h1 may run, and three others
  const snapshot: ClusterSnapshot = {
    hosts: ['h1', 'h2', 'h3'].map((id) => sampleHostRecord(id)),
    workloads: [sampleWorkloadRecord(spec('pinned', 1024, ['h1']), 'h1'), ...[1, 2, 3].map((i) => sampleWorkloadRecord(spec(`w${i}`, 1024 * i), 'h1'))],
  };

  it('refuses the whole host by default, naming the workload that cannot leave and why', () => {
    const draft = buildEvacuationPlan(snapshot, 'h1');
    expect(draft.ok).toBe(false);
    if (draft.ok) return;
    expect(draft.reason).toBe('1 workload(s) have nowhere to go');
    expect(draft.unplaced).toEqual([{ workload: 'pinned', refused: { NOT_ALLOWED: 2 }, reason: expect.stringContaining('NOT_ALLOWED ×2 (h') }]);
    expect(draft.unplaced[0]!.reason).toContain('not among the hosts the workload may run on');
  });

  it('with partial, moves the others and lists the one that stays', () => {
    const draft = buildEvacuationPlan(snapshot, 'h1', { partial: true });
    expect(draft.ok).toBe(true);
    if (!draft.ok) return;
    expect(draft.plan.moves.map((m) => m.workload).sort()).toEqual(['w1', 'w2', 'w3']);
    expect(draft.plan.moves.every((m) => m.stage === 1 && m.dependsOn?.length === 0)).toBe(true);
    expect(draft.plan.unplaced).toEqual([expect.objectContaining({ workload: 'pinned', refused: { NOT_ALLOWED: 2 } })]);
    expect(draft.plan.reason).toContain('1 cannot leave and stay: pinned');
    expect(draft.plan.params).toMatchObject({ partial: true });
  });

  it('a host that can be emptied has no unplaced list, partial or not', () => {
    const easy: ClusterSnapshot = { ...snapshot, workloads: snapshot.workloads.slice(1) };
    for (const partial of [false, true]) {
      const draft = buildEvacuationPlan(easy, 'h1', { partial });
      expect(draft.ok && draft.plan.unplaced).toBeUndefined();
    }
  });

  it('the planner: reasons per workload, by code, with the first host saying it', () => {
    const cluster = modelFromSnapshot(snapshot, { policy: DEFAULT_PLACEMENT_POLICY });
    const all = planEvacuation(cluster, ['h1']);
    const partial = planEvacuation(cluster, ['h1'], { partial: true });
    expect(all).toMatchObject({ ok: false, moves: [] });
    expect(partial.ok).toBe(true);
    expect(partial.moves).toHaveLength(3);
    expect(partial.unplaced.map((u) => u.workload)).toEqual(['pinned']);
    expect(partial.unplaced[0]!.reason).toMatch(/^refused by all 2 hosts that take workloads: NOT_ALLOWED ×2 \(h[23]: not among the hosts the workload may run on\)$/);
  });
});

describe('evacuation: workloads being created or mid-migration stay, listed with what they are doing', () => {
  // h1 holds two movable workloads and four busy ones; m2 migrates h2 → h1; f1 failed on h1
  const busySnapshot: ClusterSnapshot = {
    hosts: ['h1', 'h2', 'h3'].map((id) => sampleHostRecord(id)),
    workloads: [
      sampleWorkloadRecord(spec('ok1', 1024), 'h1'),
      sampleWorkloadRecord(spec('ok2', 512), 'h1', 'stopped'),
      sampleWorkloadRecord(spec('new1', 512), 'h1', 'pending'),
      sampleWorkloadRecord(spec('new2', 512), 'h1', 'creating'),
      sampleWorkloadRecord(spec('stop1', 512), 'h1', 'stopping'),
      { ...sampleWorkloadRecord(spec('m1', 512), 'h1', 'migrating'), migratingTo: 'h3' },
      { ...sampleWorkloadRecord(spec('m2', 512), 'h2', 'migrating'), migratingTo: 'h1' },
      sampleWorkloadRecord(spec('f1', 512), 'h1', 'failed'),
      sampleWorkloadRecord(spec('elsewhere', 512), 'h2', 'creating'),
    ],
  };

  it('busyWorkloads: on the host or arriving there, not running or stopped or already moving; failed ones and other hosts not', () => {
    expect(Object.fromEntries(busyWorkloads(busySnapshot, ['h1']))).toEqual({
      new1: 'waiting to be created on h1',
      new2: 'being created',
      stop1: 'stopping',
      m1: 'migrating to h3',
      m2: 'migrating onto h1 from h2',
    });
  });

  it('all or nothing: refused, each busy one listed with no host refusal and why', () => {
    const draft = buildEvacuationPlan(busySnapshot, 'h1');
    expect(draft.ok).toBe(false);
    if (draft.ok) return;
    expect(draft.reason).toBe('5 workload(s) cannot move now (being created or migrating)');
    expect(draft.unplaced.map((u) => [u.workload, u.busy, u.refused]).sort()).toEqual([
      ['m1', 'migrating to h3', {}],
      ['m2', 'migrating onto h1 from h2', {}],
      ['new1', 'waiting to be created on h1', {}],
      ['new2', 'being created', {}],
      ['stop1', 'stopping', {}],
    ]);
    expect(draft.unplaced.find((u) => u.workload === 'new2')!.reason).toBe(
      'it cannot move while being created: a migration takes only a running or stopped workload that is not already moving; evacuate again once it has settled',
    );
  });

  it('partial: only the movable ones move, and a migration would take every move it plans', () => {
    const draft = buildEvacuationPlan(busySnapshot, 'h1', { partial: true });
    expect(draft.ok).toBe(true);
    if (!draft.ok) return;
    expect(draft.plan.moves.map((m) => m.workload).sort()).toEqual(['ok1', 'ok2']);
    expect(draft.plan.unplaced!.map((u) => u.workload).sort()).toEqual(['m1', 'm2', 'new1', 'new2', 'stop1']);
    expect(draft.plan.reason).toContain('5 cannot leave and stay');
    for (const m of draft.plan.moves) {
      const w = busySnapshot.workloads.find((x) => x.spec.id === m.workload)!;
      expect(planMigration(w, busySnapshot, { destination: m.to, mode: 'auto' }).ok, m.workload).toBe(true);
    }
    // and the busy ones are exactly those planMigration refuses (m2 is h2's: not this host's to move)
    for (const u of draft.plan.unplaced!.filter((x) => x.workload !== 'm2')) {
      const w = busySnapshot.workloads.find((x) => x.spec.id === u.workload)!;
      expect(planMigration(w, busySnapshot, { destination: 'h2', mode: 'auto' }).ok, u.workload).toBe(false);
    }
  });

  it('both kinds: the summary counts each', () => {
    const mixed: ClusterSnapshot = { ...busySnapshot, workloads: [...busySnapshot.workloads, sampleWorkloadRecord(spec('only-h1', 512, ['h1']), 'h1')] };
    const draft = buildEvacuationPlan(mixed, 'h1');
    expect(!draft.ok && draft.reason).toBe('1 workload(s) have nowhere to go; 5 workload(s) cannot move now (being created or migrating)');
  });

  it('a busy map from the caller (a migration queued, not started) adds to what the snapshot shows, which wins', () => {
    const draft = buildEvacuationPlan(busySnapshot, 'h1', {
      partial: true,
      busy: new Map([
        ['ok1', 'migrating (m-ok1)'],
        ['m1', 'migrating (m-m1)'],
      ]),
    });
    expect(draft.ok && draft.plan.moves.map((m) => m.workload)).toEqual(['ok2']);
    const unplaced = draft.ok ? draft.plan.unplaced! : [];
    expect(unplaced.find((u) => u.workload === 'ok1')).toMatchObject({ busy: 'migrating (m-ok1)', refused: {} });
    expect(unplaced.find((u) => u.workload === 'm1')).toMatchObject({ busy: 'migrating to h3' });
  });

  it('the planner alone: a resident the model pins stays even without the map', () => {
    const cluster = modelFromSnapshot(busySnapshot, { policy: DEFAULT_PLACEMENT_POLICY });
    const plan = planEvacuation(cluster, ['h1'], { partial: true });
    expect(plan.ok && plan.moves.map((m) => m.workload).sort()).toEqual(['ok1', 'ok2']);
    expect(plan.unplaced.map((u) => [u.workload, u.busy]).sort()).toEqual([
      ['m1', 'it is in another operation'],
      ['new2', 'it is in another operation'],
      ['stop1', 'it is in another operation'],
    ]);
  });
});

describe('plans carry their stages', () => {
  it('a rebalance plan: every move has a stage, dependencies on earlier stages only', () => {
    const snapshot: ClusterSnapshot = {
      hosts: ['h1', 'h2', 'h3'].map((id) => sampleHostRecord(id)),
      workloads: Array.from({ length: 6 }, (_, i) => sampleWorkloadRecord(spec(`w${i}`, 1024 * (i + 1)), 'h1')),
    };
    const plan = buildRebalancePlan(snapshot, { maxMoves: 4 });
    expect(plan.moves.length).toBeGreaterThan(0);
    plan.moves.forEach((m) => {
      expect(m.stage).toBeGreaterThanOrEqual(1);
      for (const k of m.dependsOn ?? []) expect(plan.moves[k]!.stage!).toBeLessThan(m.stage!);
    });
  });
});

describe('plans predict each move as a migration asked for by hand would be', () => {
  const snapshot: ClusterSnapshot = {
    hosts: ['h1', 'h2', 'h3'].map((id) => sampleHostRecord(id)),
    workloads: [sampleWorkloadRecord(spec('pinned', 1024, ['h1']), 'h1'), ...[1, 2, 3].map((i) => sampleWorkloadRecord(spec(`w${i}`, 1024 * i), 'h1'))],
  };

  it('on the cost model before anything was measured, and learned from measured migrations after', () => {
    const model = buildEvacuationPlan(snapshot, 'h1', { partial: true });
    if (!model.ok) throw new Error(model.reason);
    const first = model.plan.moves[0]!;
    expect(first.predicted.basis).toBe('model');
    // three measured moves of the same kind, each twice as slow and frozen twice as long as the model said
    const history = [1, 2, 3].map((i) => ({
      migrationId: `m-${i}`,
      strategy: first.strategy,
      source: first.from,
      destination: first.to,
      memoryBytes: 2 ** 30,
      bytes: first.predicted.bytes,
      freezeMs: first.predicted.freezeMs * 2,
      seconds: first.predicted.seconds * 2,
      predicted: null,
      at: i,
    }));
    const learned = buildEvacuationPlan(snapshot, 'h1', { partial: true, history });
    if (!learned.ok) throw new Error(learned.reason);
    const again = learned.plan.moves.find((m) => m.workload === first.workload && m.to === first.to)!;
    expect(again.predicted.basis).not.toBe('model');
    expect(again.predicted.seconds).toBeGreaterThan(first.predicted.seconds * 1.5);
  });
});
