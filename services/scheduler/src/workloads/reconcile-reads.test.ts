import { describe, expect, it } from 'vitest';
import { copy, record } from '../../../../test/fixtures/reconcile.ts';
import { FreshReads, doubtfulCopies } from './reconcile-reads.ts';

const generation = { id: 'g2', since: 0 };

describe('which reported copies the reconciler reads fresh before deciding', () => {
  it('trusts the copy only for copies it finds plainly in line', () => {
    const containers = [copy({ id: 'w1', generation: 'g2' }), copy({ id: 'w2', generation: 'g2' }), copy({ id: 'w3', generation: 'g2' })];
    const cached = [record({ spec: { id: 'w1' } as never }), record({ spec: { id: 'w2' } as never }), record({ spec: { id: 'w3' } as never })];
    expect(doubtfulCopies('h1', containers, cached, generation, 1)).toEqual([]);
  });

  it('reads fresh every copy the copy would act on: superseded, frozen, stopped, a stray, an adoption', () => {
    const containers = [
      copy({ id: 'a', generation: 'g2' }), // in line
      copy({ id: 'b', generation: 'g2' }), // record elsewhere: discard
      copy({ id: 'c', generation: 'g2', state: 'frozen' }), // thaw
      copy({ id: 'd', generation: 'g2', state: 'stopped', exit: { reason: 'oom-killed', at: 2 } }), // record-stopped
      copy({ id: 'e', generation: 'g2' }), // no record: stray
      copy({ id: 'f', generation: 'g1' }), // no record, earlier generation, running: adopt
    ];
    const cached = [record(), record({ hostId: 'h2', epoch: 4 }), record(), record(), null, null];
    expect(doubtfulCopies('h1', containers, cached, generation, 1)).toEqual([1, 2, 3, 4, 5]);
  });

  it('reads fresh a copy in line that still needs its stamp of this generation', () => {
    expect(doubtfulCopies('h1', [copy({ generation: 'g1' })], [record()], generation, 1)).toEqual([0]);
    expect(doubtfulCopies('h1', [copy()], [record()], generation, 1)).toEqual([0]);
    // without a generation (it could not be read) there is nothing to stamp
    expect(doubtfulCopies('h1', [copy()], [record()], null, 1)).toEqual([]);
  });
});

describe('when a host’s records are read fresh whole', () => {
  it('on its first pass, then every period', () => {
    const reads = new FreshReads(10_000);
    expect(reads.due('h1', 0, 'g1')).toBe(true);
    reads.readFresh('h1', 0, 'g1');
    expect(reads.due('h1', 9_999, 'g1')).toBe(false);
    expect(reads.due('h1', 10_000, 'g1')).toBe(true);
    // per host
    expect(reads.due('h2', 1, 'g1')).toBe(true);
  });

  it('at once when the cluster generation changed (Redis lost its data) or could not be read', () => {
    const reads = new FreshReads(10_000);
    reads.readFresh('h1', 0, 'g1');
    expect(reads.due('h1', 1, 'g2')).toBe(true);
    expect(reads.due('h1', 1, null)).toBe(true);
    reads.readFresh('h1', 1, 'g2');
    expect(reads.due('h1', 2, 'g2')).toBe(false);
  });
});
