import { describe, expect, it } from 'vitest';
import type { ContainerStatus, WorkloadSpec } from '@ferry/protocol';
import { copy as baseCopy, record } from '../../../../test/fixtures/reconcile.ts';
import { RECOVERY_HOLD_MS, rebuiltRecord, reviewCopy, type GenerationView } from './reconcile-decision.ts';

const G0 = 'g-old';
const G1: GenerationView = { id: 'g-new', since: 1_000_000 };
const now = G1.since + 500;

const copy = (patch: Partial<ContainerStatus> = {}): ContainerStatus => baseCopy({ generation: G0, ...patch });

const rebuiltFrom = (hostId: string, epoch: number) => record({ hostId, epoch, recovered: { at: now, from: hostId, epoch, generation: G1.id } });

describe('telling a loss of the cluster state apart from a deleted workload', () => {
  it('rebuilds the record of a copy stamped with an earlier generation (Redis lost its data), never discards it', () => {
    expect(reviewCopy('h1', copy(), null, G1, now)).toEqual({ decision: { kind: 'adopt' }, stamp: false });
  });

  it('keeps a copy of the current generation without a record a stray (a workload deleted while its host was away)', () => {
    expect(reviewCopy('h1', copy({ generation: G1.id }), null, G1, now).decision).toEqual({ kind: 'stray' });
  });

  it('keeps an unstamped copy without a record a stray (an agent from before generations, or never confirmed)', () => {
    const { generation: _, ...unstamped } = copy();
    expect(reviewCopy('h1', unstamped, null, G1, now).decision).toEqual({ kind: 'stray' });
  });

  it('without a readable generation, decides as before', () => {
    expect(reviewCopy('h1', copy(), null, null, now)).toEqual({ decision: { kind: 'stray' }, stamp: false });
    expect(reviewCopy('h1', copy(), record(), null, now)).toEqual({ decision: { kind: 'in-line' }, stamp: false });
  });

  it('adopts a copy that is not running only after every host had time to report', () => {
    const stopped = copy({ state: 'stopped', exit: { reason: 'fenced', at: 2 } });
    expect(reviewCopy('h1', stopped, null, G1, now).decision).toEqual({ kind: 'in-line' });
    expect(reviewCopy('h1', stopped, null, G1, G1.since + RECOVERY_HOLD_MS).decision).toEqual({ kind: 'adopt' });
  });

  it('stamps a copy its record confirms, and only such a copy', () => {
    expect(reviewCopy('h1', copy(), record(), G1, now)).toEqual({ decision: { kind: 'in-line' }, stamp: true });
    expect(reviewCopy('h1', copy({ generation: G1.id }), record(), G1, now)).toEqual({ decision: { kind: 'in-line' }, stamp: false });
    expect(reviewCopy('h2', copy({ epoch: 4 }), record({ migratingTo: 'h2' }), G1, now).stamp).toBe(true);
    expect(reviewCopy('h2', copy(), record(), G1, now)).toMatchObject({ decision: { kind: 'discard' }, stamp: false });
    expect(reviewCopy('h1', copy({ state: 'frozen' }), record(), G1, now)).toEqual({ decision: { kind: 'thaw' }, stamp: true });
  });
});

describe('two hosts with copies from before the loss', () => {
  it('the higher epoch wins over the copy the record was rebuilt from', () => {
    const verdict = reviewCopy('h2', copy({ epoch: 5 }), rebuiltFrom('h1', 3), G1, now);
    expect(verdict.decision.kind).toBe('take-over');
    expect(verdict.stamp).toBe(false);
  });

  it('the lower or equal epoch is discarded (never two running)', () => {
    expect(reviewCopy('h2', copy({ epoch: 2 }), rebuiltFrom('h1', 3), G1, now).decision.kind).toBe('discard');
    expect(reviewCopy('h2', copy({ epoch: 3 }), rebuiltFrom('h1', 3), G1, now).decision.kind).toBe('discard');
  });

  it('no take-over once the record moved on after it was rebuilt (a migration, a restart)', () => {
    const moved = record({ hostId: 'h3', epoch: 4, recovered: { at: now, from: 'h1', epoch: 3, generation: G1.id } });
    expect(reviewCopy('h2', copy({ epoch: 5 }), moved, G1, now).decision.kind).toBe('discard');
  });

  it('no take-over of a record that was never rebuilt, nor by a copy of the current generation', () => {
    expect(reviewCopy('h2', copy({ epoch: 5 }), record(), G1, now).decision.kind).toBe('discard');
    expect(reviewCopy('h2', copy({ epoch: 5, generation: G1.id }), rebuiltFrom('h1', 3), G1, now).decision.kind).toBe('discard');
  });
});

describe('the rebuilt record', () => {
  const spec = { id: 'w1', ha: { enabled: true, priority: 7 } } as WorkloadSpec;

  it('takes the spec (HA included), epoch and host from the copy, and says where it came from', () => {
    const r = rebuiltRecord('h1', { ...copy({ epoch: 6 }), spec }, G1.id, null, now);
    expect(r).toMatchObject({ hostId: 'h1', epoch: 6, phase: 'running', desired: 'running', recovered: { from: 'h1', epoch: 6, generation: G1.id } });
    expect(r.spec.ha).toEqual({ enabled: true, priority: 7 });
    expect(r.placement?.reason).toBe('rebuilt from host h1 after the cluster state was lost');
  });

  it('a copy stopped by fencing is meant to run; one stopped on purpose stays stopped', () => {
    expect(rebuiltRecord('h1', { ...copy({ state: 'stopped', exit: { reason: 'fenced', at: 2 } }), spec }, G1.id, null, now)).toMatchObject({ phase: 'running', desired: 'running' });
    expect(rebuiltRecord('h1', { ...copy({ state: 'stopped', exit: { reason: 'stopped', at: 2 } }), spec }, G1.id, null, now)).toMatchObject({ phase: 'stopped', desired: 'stopped' });
  });
});
