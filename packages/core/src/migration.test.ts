import { describe, expect, it } from 'vitest';
import { MIGRATION_STRATEGIES, WorkloadSpec, type CriuReport, type MigrationRecord, type WorkloadRecord } from '@ferry/protocol';
import { sampleHostRecord, sampleReport, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { chooseStrategy, decideResume, phasesFor, planMigration, precopyStopReason, rollbackSteps, versionAtLeast } from './migration.ts';
import { MIGRATION_STRATEGY_REGISTRY } from './migration-pipeline.ts';

const withCriu = (id: string, criu: CriuReport | null) => sampleHostRecord(id, { capacity: sampleReport(id, { criu }) });
const criu = (memDirtyTrack: boolean, uffdNoncoop: boolean, version = '4.2.1'): CriuReport => ({ version, usable: true, features: { memDirtyTrack, uffdNoncoop } });
const auto = { mode: 'auto' as const, strategy: null };

describe('migration strategy', () => {
  it('follows the kernels: lazy pages, else stop-and-copy; the page server only on request (its rollback needs the destination)', () => {
    expect(chooseStrategy(withCriu('a', criu(false, true)), withCriu('b', criu(true, true)), true, auto)).toMatchObject({ strategy: 'lazy' });
    expect(chooseStrategy(withCriu('a', criu(false, true)), withCriu('b', criu(false, false)), true, auto)).toMatchObject({ strategy: 'stop-and-copy' });
    expect(chooseStrategy(withCriu('a', criu(false, false)), withCriu('b', criu(false, false)), true, { mode: 'live', strategy: 'page-server' })).toMatchObject({ ok: true, strategy: 'page-server' });
  });

  it('moves a stopped workload cold, and refuses a live move of it', () => {
    expect(chooseStrategy(withCriu('a', null), withCriu('b', null), false, auto)).toMatchObject({ ok: true, strategy: 'cold' });
    expect(chooseStrategy(withCriu('a', null), withCriu('b', null), false, { mode: 'live', strategy: null })).toMatchObject({ ok: false, problem: { code: 'NOT_RUNNING' } });
  });

  it('refuses live migration without a recent, working CRIU on both ends', () => {
    const old = chooseStrategy(withCriu('a', criu(false, true, '4.1.1')), withCriu('b', criu(false, true)), true, auto);
    expect(old).toMatchObject({ ok: false, problem: { code: 'CRIU_UNSUPPORTED' } });
    if (!old.ok) expect(old.problem.message).toContain('4.1.1');
    expect(chooseStrategy(withCriu('a', criu(false, true)), withCriu('b', null), true, auto)).toMatchObject({ ok: false, problem: { code: 'CRIU_UNSUPPORTED' } });
  });

  it('never picks pre-copy (not implemented yet), even on hosts that track dirty memory, and refuses it when asked', () => {
    const tracking = [withCriu('a', criu(true, true)), withCriu('b', criu(true, true))] as const;
    expect(chooseStrategy(...tracking, true, auto)).toMatchObject({ ok: true, strategy: 'lazy' });
    expect(chooseStrategy(withCriu('a', criu(true, false)), withCriu('b', criu(true, false)), true, auto)).toMatchObject({ ok: true, strategy: 'stop-and-copy' });
    expect(chooseStrategy(...tracking, true, { mode: 'live', strategy: 'precopy' })).toMatchObject({ ok: false, problem: { code: 'PRECOPY_UNSUPPORTED' } });
  });

  it('never tries pre-dumps without dirty tracking, even when asked', () => {
    const forced = chooseStrategy(withCriu('a', criu(false, true)), withCriu('b', criu(false, true)), true, { mode: 'live', strategy: 'precopy' });
    expect(forced).toMatchObject({ ok: false, problem: { code: 'PRECOPY_UNSUPPORTED' } });
    expect(chooseStrategy(withCriu('a', criu(false, true)), withCriu('b', criu(false, true)), true, { mode: 'live', strategy: 'stop-and-copy' })).toMatchObject({ strategy: 'stop-and-copy' });
  });

  it('compares versions numerically', () => {
    expect(versionAtLeast('4.10', '4.2')).toBe(true);
    expect(versionAtLeast('4.2.1', '4.2')).toBe(true);
    expect(versionAtLeast('4.1.1', '4.2')).toBe(false);
  });
});

describe('pre-copy stop rules', () => {
  const MiB = 2 ** 20;
  it('stops at the round limit, when small enough, or when rounds stop shrinking', () => {
    expect(precopyStopReason([{ bytes: 100 * MiB, ms: 1 }])).toBeNull();
    expect(
      precopyStopReason([
        { bytes: 100 * MiB, ms: 1 },
        { bytes: 40 * MiB, ms: 1 },
      ]),
    ).toBeNull();
    expect(
      precopyStopReason([
        { bytes: 100 * MiB, ms: 1 },
        { bytes: 3 * MiB, ms: 1 },
      ]),
    ).toMatch(/small enough/);
    expect(
      precopyStopReason([
        { bytes: 100 * MiB, ms: 1 },
        { bytes: 90 * MiB, ms: 1 },
      ]),
    ).toMatch(/stopped shrinking/);
    const eight = Array.from({ length: 8 }, (_, i) => ({ bytes: (100 - i * 10) * MiB, ms: 1 }));
    expect(precopyStopReason(eight)).toMatch(/round limit/);
  });
});

describe('resuming a migration from its record', () => {
  const record = (over: Partial<MigrationRecord>) => ({ state: 'running', phase: 'validate', completed: [], cancelRequested: false, strategy: 'lazy', ...over }) as MigrationRecord;

  it('re-runs an idempotent step before the freeze', () => {
    expect(decideResume(record({ phase: 'presync', completed: ['validate', 'reserve', 'prepare'] }), false)).toEqual({ action: 'continue', from: 'presync' });
    expect(decideResume(record({ state: 'queued' }), false)).toEqual({ action: 'continue', from: 'validate' });
  });

  it('rolls back a phase at or after the freeze that did not finish', () => {
    const frozen = record({ phase: 'restore', completed: ['validate', 'reserve', 'prepare', 'presync', 'freeze', 'transfer'] });
    expect(decideResume(frozen, false)).toEqual({ action: 'rollback', reason: 'interrupted during restore' });
  });

  it('never fails back after the commit, and honours cancels before it', () => {
    expect(decideResume(record({ phase: 'commit', completed: ['validate', 'reserve', 'prepare', 'presync', 'freeze', 'transfer', 'restore', 'verify'] }), true)).toEqual({ action: 'cleanup' });
    // verified on the destination, the commit's write lost (Redis restarted): the commit again, even if cancelled meanwhile
    const verified = record({ phase: 'commit', completed: ['validate', 'reserve', 'prepare', 'presync', 'freeze', 'transfer', 'restore', 'verify'], cancelRequested: true });
    expect(decideResume(verified, false)).toEqual({ action: 'continue', from: 'commit' });
    expect(decideResume({ ...verified, state: 'rolling-back' }, false)).toEqual({ action: 'rollback', reason: 'a rollback was under way' });
    expect(decideResume(record({ phase: 'presync', cancelRequested: true }), false)).toEqual({ action: 'rollback', reason: 'cancelled' });
    expect(decideResume(record({ state: 'completed' }), true)).toEqual({ action: 'done' });
  });

  it.each(MIGRATION_STRATEGIES)('plans rollback steps from how far it got (%s)', (strategy) => {
    const frozen = MIGRATION_STRATEGY_REGISTRY[strategy].live;
    expect(rollbackSteps(['validate', 'reserve'], strategy)).toEqual([]);
    expect(rollbackSteps(['validate', 'reserve', 'prepare'], strategy)).toEqual(['abort-destination']);
    // the presync staged the move on the source: its side is cleared too, after the destination's
    expect(rollbackSteps(['validate', 'reserve', 'prepare', 'presync'], strategy)).toEqual(['abort-destination', 'resume-source']);
    // once dumped the source is made ready first; the destination's copy always goes before the source runs again
    const afterDump = frozen ? ['ready-source', 'abort-destination', 'resume-source'] : ['abort-destination', 'resume-source'];
    if (frozen) expect(rollbackSteps(['validate', 'reserve', 'prepare', 'presync', 'freeze'], strategy)).toEqual(afterDump);
    expect(rollbackSteps(['validate', 'reserve', 'prepare', 'presync', 'restore'], strategy)).toEqual(afterDump);
    expect(rollbackSteps(['commit'], strategy)).toEqual(afterDump);
  });

  it('rolls back an interrupted cold migration from its restore on (nothing to freeze before)', () => {
    const cold = (phase: MigrationRecord['phase'], completed: MigrationRecord['phase'][]) => record({ strategy: 'cold', phase, completed });
    expect(decideResume(cold('presync', ['validate', 'reserve', 'prepare']), false)).toEqual({ action: 'continue', from: 'presync' });
    expect(decideResume(cold('restore', ['validate', 'reserve', 'prepare', 'presync']), false)).toEqual({ action: 'rollback', reason: 'interrupted during restore' });
    expect(decideResume(cold('presync', ['validate', 'reserve', 'prepare', 'presync']), false)).toEqual({ action: 'continue', from: 'restore' });
  });

  it('skips what a strategy does not need', () => {
    expect(phasesFor('cold')).toEqual(['validate', 'reserve', 'prepare', 'presync', 'restore', 'verify', 'commit', 'cleanup']);
    expect(phasesFor('lazy')).not.toContain('precopy');
    expect(phasesFor('precopy')).toContain('precopy');
  });
});

describe('planning a migration', () => {
  const hosts = [sampleHostRecord('h1'), sampleHostRecord('h2'), sampleHostRecord('h3', { state: 'down' })];
  const spec = WorkloadSpec.parse({
    id: 'w',
    template: 'busybox',
    command: ['/bin/sh'],
    resources: { vcpus: 1, memoryMiB: 256, diskMiB: 64 },
    networks: [{ network: 'prod', address: '10.77.0.5' }],
    pool: 'local',
  });
  const workload = (phase: WorkloadRecord['phase'] = 'running') => sampleWorkloadRecord(spec, 'h1', phase);
  const snapshot = { hosts, workloads: [workload()] };
  const plan = (request: Parameters<typeof planMigration>[2], w = workload()) => planMigration(w, snapshot, request);

  it('moves a running workload live to the requested host, or to the best other host', () => {
    expect(plan({ destination: 'h2', mode: 'auto' })).toMatchObject({ ok: true, destination: 'h2', strategy: 'lazy' });
    expect(plan({ mode: 'auto' })).toMatchObject({ ok: true, destination: 'h2' });
  });

  it('refuses the same host, an unknown host, a down host, and a workload in the middle of something', () => {
    expect(plan({ destination: 'h1', mode: 'auto' })).toMatchObject({ ok: false, code: 'BAD_REQUEST', problems: [{ code: 'SAME_HOST' }] });
    expect(plan({ destination: 'h9', mode: 'auto' })).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    expect(plan({ destination: 'h3', mode: 'auto' })).toMatchObject({ ok: false, code: 'CONFLICT', problems: [{ code: 'HOST_DOWN' }] });
    expect(plan({ mode: 'auto' }, workload('starting'))).toMatchObject({ ok: false, code: 'CONFLICT' });
  });

  it('plans no pre-copy on hosts that pose as tracking dirty memory; asked for, it is refused up front', () => {
    const tracking = (id: string) => withCriu(id, criu(true, true));
    const both = { hosts: [tracking('h1'), tracking('h2')], workloads: [workload()] };
    expect(planMigration(workload(), both, { mode: 'auto' })).toMatchObject({ ok: true, destination: 'h2', strategy: 'lazy' });
    expect(planMigration(workload(), both, { mode: 'live', strategy: 'precopy' })).toMatchObject({ ok: false, code: 'CONFLICT', problems: [{ code: 'PRECOPY_UNSUPPORTED' }] });
  });

  it('refuses a destination whose CPU lacks what the workload started with, listing the flags', () => {
    const poorer = sampleHostRecord('h2', { capacity: sampleReport('h2', { cpu: { vendor: 'AuthenticAMD', family: 26, model: 2, modelName: 'x', flags: ['fpu'], count: 8 } }) });
    const result = planMigration(workload(), { hosts: [hosts[0]!, poorer], workloads: [] }, { destination: 'h2', mode: 'auto' });
    expect(result).toMatchObject({ ok: false, problems: [{ code: 'CPU_FLAGS_MISSING' }] });
    if (!result.ok) expect(result.message).toContain('sse2 avx2');
  });
});
