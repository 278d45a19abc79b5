import { describe, expect, it } from 'vitest';
import type { HostRecord } from '@ferry/protocol';
import { sampleHostRecord, sampleReport } from '../../../test/fixtures/capacity.ts';
import { PoolShapeCache, samePoolShapes } from './pool-shapes.ts';
import { PoolProofs } from './snapshot.ts';

const probe = (id: string, sees: string[]) => ({ token: `${id}-token-token`, sees: sees.map((o) => ({ hostId: o, token: `${o}-token-token` })) });
const host = (id: string, p: ReturnType<typeof probe> | undefined, freeBytes = 2 ** 40): HostRecord =>
  sampleHostRecord(id, { capacity: sampleReport(id, { pools: [{ id: 'shared', path: '/s', shared: true, totalBytes: 2 ** 42, freeBytes, ...(p ? { probe: p } : {}) }] }) });

describe('PoolShapeCache (what a host list’s pools derive to, once per shape)', () => {
  const p1 = probe('h1', ['h2']);
  const p2 = probe('h2', ['h1']);

  it('answers a new list of new records with the same probes from the last one, and works out a changed one again', () => {
    let computed = 0;
    const cache = new PoolShapeCache((hosts) => (computed++, new PoolProofs({ hosts: [...hosts], workloads: [] })));
    const first = cache.get([host('h1', p1), host('h2', p2)]);
    expect(first.proven('shared', 'h1', 'h2')).toBe(true);
    // the next reports: new records, new free space, the same probe objects
    expect(cache.get([host('h1', p1, 5), host('h2', p2, 7)])).toBe(first);
    expect(computed).toBe(1);
    // h2 no longer sees h1's token: a new probe object, worked out again, and the proof is gone
    const later = cache.get([host('h1', p1), host('h2', probe('h2', []))]);
    expect(computed).toBe(2);
    expect(later).not.toBe(first);
    expect(later.proven('shared', 'h1', 'h2')).toBe(true); // h1 still reads h2's token back
    expect(cache.get([host('h1', probe('h1', [])), host('h2', probe('h2', []))]).proven('shared', 'h1', 'h2')).toBe(false);
  });

  it('tells shapes apart by host order, host ids, pool ids, shared flags and probe identity', () => {
    const a = [host('h1', p1), host('h2', p2)];
    expect(samePoolShapes(a, [host('h1', p1), host('h2', p2)])).toBe(true);
    expect(samePoolShapes(a, [host('h2', p2), host('h1', p1)])).toBe(false);
    expect(samePoolShapes(a, [host('h1', p1)])).toBe(false);
    expect(samePoolShapes(a, [host('h1', p1), host('h3', p2)])).toBe(false);
    expect(samePoolShapes(a, [host('h1', p1), host('h2', probe('h2', ['h1']))])).toBe(false); // equal, not the same object
    expect(samePoolShapes(a, [host('h1', p1), host('h2', undefined)])).toBe(false);
    const local = sampleHostRecord('h2', { capacity: sampleReport('h2', { pools: [{ id: 'shared', path: '/s', shared: false, totalBytes: 1, freeBytes: 1, probe: p2 }] }) });
    expect(samePoolShapes(a, [host('h1', p1), local])).toBe(false);
  });
});
