import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MIGRATION_PHASES, MIGRATION_STRATEGIES, WorkloadSpec, type CriuReport } from '@ferry/protocol';
import { sampleHostRecord, sampleReport, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { chooseStrategy, phasesFor, planMigration } from './migration.ts';
import { MIGRATION_STRATEGY_REGISTRY, UNDO_ORDER, UNDO_STEPS, describePipeline, implementedStrategies, phaseDefinition, strategyUnavailable } from './migration-pipeline.ts';

const withCriu = (id: string, criu: CriuReport) => sampleHostRecord(id, { capacity: sampleReport(id, { criu }) });
const everything: CriuReport = { version: '4.2.1', usable: true, features: { memDirtyTrack: true, uffdNoncoop: true } };

describe('the migration pipeline registry', () => {
  it.each(MIGRATION_STRATEGIES)('declares %s under its own name, its phases in protocol order, ending in commit and cleanup', (name) => {
    const s = MIGRATION_STRATEGY_REGISTRY[name];
    expect(s.name).toBe(name);
    const order = s.phases.map((p) => MIGRATION_PHASES.indexOf(p.phase));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(new Set(order).size).toBe(order.length);
    expect(phasesFor(name).slice(0, 2)).toEqual(['validate', 'reserve']);
    expect(phasesFor(name).slice(-2)).toEqual(['commit', 'cleanup']);
    expect(phasesFor(name)).toContain(s.frozenFrom);
    // an agent phase names its timeout; a scheduler step runs in the scheduler's own time
    for (const p of s.phases) expect(p.side === 'scheduler' ? p.timeout === null : p.timeout !== null).toBe(true);
    // nothing after the commit can be cancelled or undone
    for (const phase of ['commit', 'cleanup'] as const) expect(phaseDefinition(name, phase)).toMatchObject({ cancel: 'never', undo: [] });
    expect(s.implemented).toBe(s.unavailable === null);
  });

  it('resumes the source before the freeze only where a presync staged something, and after it from the dump, made ready first', () => {
    for (const s of implementedStrategies().filter((d) => d.live)) {
      expect(phaseDefinition(s.name, 'freeze')).toMatchObject({ side: 'source', command: 'migration.dump', undo: ['ready-source', 'resume-source'], recheck: true });
      expect(s.frozenFrom).toBe('freeze');
    }
    expect(phaseDefinition('cold', 'freeze')).toBeUndefined();
    for (const name of MIGRATION_STRATEGIES) expect(phaseDefinition(name, 'presync')).toMatchObject({ side: 'source', undo: ['resume-source'], skip: 'shared-rootfs', cancel: 'during' });
  });

  it("removes the destination's copy before the source runs the workload again, once the source is ready", () => {
    expect(UNDO_ORDER).toEqual(['ready-source', 'abort-destination', 'resume-source']);
    expect(UNDO_STEPS['ready-source']).toEqual({ side: 'source', command: 'migration.resume', timeout: 'transferMs', flag: 'readyOnly', whenHostDown: 'skip' });
  });

  it('says which strategies can roll back after the restore only until the last page left', () => {
    expect(MIGRATION_STRATEGIES.filter((s) => MIGRATION_STRATEGY_REGISTRY[s].sourceResumableUntil === 'last-page')).toEqual(['lazy']);
    expect(MIGRATION_STRATEGIES.filter((s) => MIGRATION_STRATEGY_REGISTRY[s].pagesAfterDump === 'destination')).toEqual(['page-server']);
    // measured in test/migration-rollback.test.ts, which expects what this says
    expect(MIGRATION_STRATEGIES.filter((s) => !MIGRATION_STRATEGY_REGISTRY[s].rollbackKeepsConnections)).toEqual(['lazy']);
    // a strategy that needs the destination to roll back after its dump is never picked by itself
    expect(MIGRATION_STRATEGY_REGISTRY['page-server'].auto).toBeNull();
  });

  it('has only post-copy serve pages after the restore', () => {
    expect(MIGRATION_STRATEGIES.filter((s) => MIGRATION_STRATEGY_REGISTRY[s].postCopy)).toEqual(['lazy']);
  });
});

describe('a strategy that is not implemented', () => {
  it('is precopy today, and is never chosen, even where every feature is there', () => {
    expect(MIGRATION_STRATEGIES.filter((s) => !MIGRATION_STRATEGY_REGISTRY[s].implemented)).toEqual(['precopy']);
    expect(chooseStrategy(withCriu('a', everything), withCriu('b', everything), true, { mode: 'auto', strategy: null })).toMatchObject({ ok: true, strategy: 'lazy' });
  });

  it('is refused by name, saying what to ask for instead', () => {
    const refused = chooseStrategy(withCriu('a', everything), withCriu('b', everything), true, { mode: 'live', strategy: 'precopy' });
    expect(refused).toEqual({
      ok: false,
      problem: {
        field: 'strategy',
        code: 'PRECOPY_UNSUPPORTED',
        message: 'iterative pre-copy is not implemented in this version of Ferry: ask for lazy, page-server or stop-and-copy, or let Ferry pick',
      },
    });
    expect(strategyUnavailable('lazy')).toBeNull();
  });

  it('is refused up front by the planner the API asks', () => {
    const hosts = [withCriu('h1', everything), withCriu('h2', everything)];
    const workload = sampleWorkloadRecord(WorkloadSpec.parse({ id: 'w', template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 1, memoryMiB: 64, diskMiB: 64 }, pool: 'local' }), 'h1');
    expect(planMigration(workload, { hosts, workloads: [] }, { destination: 'h2', mode: 'live', strategy: 'precopy' })).toMatchObject({
      ok: false,
      code: 'CONFLICT',
      problems: [{ code: 'PRECOPY_UNSUPPORTED' }],
    });
  });
});

describe('docs/migration.md', () => {
  it('shows the pipeline exactly as the registry declares it', () => {
    const docs = readFileSync(new URL('../../../docs/migration.md', import.meta.url), 'utf8');
    const between = /<!-- pipeline:begin[^>]*-->\n([\s\S]*?)\n<!-- pipeline:end -->/.exec(docs);
    expect(between, 'docs/migration.md has the pipeline markers').not.toBeNull();
    expect(between![1]).toBe(describePipeline());
  });
});
