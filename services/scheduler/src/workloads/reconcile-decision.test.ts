import { describe, expect, it } from 'vitest';
import { copy, record } from '../../../../test/fixtures/reconcile.ts';
import { decideCopy } from './reconcile-decision.ts';

describe('what the reconciler does about a reported copy', () => {
  it('leaves the current copy alone, however often it is reported', () => {
    expect(decideCopy('h1', copy(), record())).toEqual({ kind: 'in-line' });
    expect(decideCopy('h1', copy({ state: 'stopped', exit: { reason: 'stopped', at: 2 } }), record({ phase: 'stopped', desired: 'stopped' }))).toEqual({ kind: 'in-line' });
  });

  it('discards a copy whose workload was restarted elsewhere, even though the copy itself never changed', () => {
    // a host back from a partition: same state, same epoch as before it left — only the record moved
    const decision = decideCopy('h1', copy(), record({ hostId: 'h2', epoch: 4 }));
    expect(decision).toEqual({ kind: 'discard', why: 'owner h2 at epoch 4, this copy at epoch 3' });
  });

  it('discards an older epoch on the owner itself, and copies of workloads with no owner', () => {
    expect(decideCopy('h1', copy({ epoch: 2 }), record()).kind).toBe('discard');
    expect(decideCopy('h1', copy(), record({ hostId: null })).kind).toBe('discard');
  });

  it("leaves a migration's destination copy to the migration", () => {
    expect(decideCopy('h2', copy({ epoch: 4 }), record({ migratingTo: 'h2', phase: 'migrating' }))).toEqual({ kind: 'in-line' });
  });

  it('thaws a frozen current copy and restarts one stopped by fencing', () => {
    expect(decideCopy('h1', copy({ state: 'frozen' }), record())).toEqual({ kind: 'thaw' });
    expect(decideCopy('h1', copy({ state: 'stopped', exit: { reason: 'fenced', at: 2 } }), record())).toEqual({ kind: 'restart-fenced' });
    // fenced, but meant to be stopped: only recorded
    expect(decideCopy('h1', copy({ state: 'stopped', exit: { reason: 'fenced', at: 2 } }), record({ desired: 'stopped' }))).toEqual({ kind: 'record-stopped', reason: 'fenced' });
  });

  it('records a copy that stopped on its own', () => {
    expect(decideCopy('h1', copy({ state: 'stopped', exit: { reason: 'oom-killed', at: 2 } }), record())).toEqual({ kind: 'record-stopped', reason: 'oom-killed' });
  });

  it('names a container of no known workload a stray', () => {
    expect(decideCopy('h1', copy(), null)).toEqual({ kind: 'stray' });
  });
});
