import { describe, expect, it } from 'vitest';
import { MAX_PAGE_LIMIT, collectPage, compareIds, decodeCursor, encodeCursor, idTime, idsAfter, pageOfList, pageQuery } from './paging.ts';
import { z } from 'zod';

const Query = z.strictObject({ ...pageQuery });

/** Walks every page of `ids` (in memory) and returns what each page held. */
async function walk(ids: string[], limit: number, keep?: (id: string) => boolean, budget?: number): Promise<string[][]> {
  const pages: string[][] = [];
  let after: string | undefined;
  for (let n = 0; n < 1000; n++) {
    const page = await collectPage(idsAfter(ids, 'id', after), async (chunk) => chunk, { limit, ...(keep ? { keep } : {}), ...(budget ? { budget } : {}) });
    pages.push(page.items);
    if (page.nextCursor === null) return pages;
    after = decodeCursor(page.nextCursor)!;
  }
  throw new Error('no end');
}

describe('cursors', () => {
  it('round-trip any id, opaque and URL-safe', () => {
    for (const id of ['web-1', 'm-web-1-mabc1234wxyz', 'a'.repeat(300), 'ünïcode/ id']) {
      const cursor = encodeCursor(id);
      expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(decodeCursor(cursor)).toBe(id);
    }
  });

  it('refuse what this API did not make', () => {
    for (const bad of ['', 'not a cursor', '!!!', 'eyJ2IjoyLCJhZnRlciI6IngifQ', Buffer.from('{"after":"x"}').toString('base64url'), Buffer.from('[1]').toString('base64url'), 'A'.repeat(2000)]) {
      expect(decodeCursor(bad), bad).toBeNull();
    }
  });

  it('query: limit 1..1000 (400 beyond), cursor decoded to the id it resumes after', () => {
    expect(Query.parse({})).toEqual({});
    expect(Query.parse({ limit: '5', cursor: encodeCursor('web-3') })).toEqual({ limit: 5, cursor: 'web-3' });
    for (const limit of ['0', '-1', '1.5', String(MAX_PAGE_LIMIT + 1), 'ten']) expect(Query.safeParse({ limit }).success, limit).toBe(false);
    const bad = Query.safeParse({ cursor: 'garbage!' });
    expect(bad.success).toBe(false);
    expect(bad.error!.issues[0]!.message).toContain('nextCursor');
    expect(Query.safeParse({ limit: '5', page: '2' }).success).toBe(false);
  });
});

describe('page order', () => {
  it('id order is byte order; newest reads the time in the id, ties by id descending', () => {
    expect(['b', 'a-2', 'a', 'a2'].sort(compareIds('id'))).toEqual(['a', 'a-2', 'a2', 'b']);
    const t = (ms: number) => ms.toString(36);
    expect(idTime(`m-web-1-${t(1_700_000_000_000)}ab12`)).toBe(1_700_000_000_000);
    expect(idTime(`f-host-a-${t(1_700_000_000_001)}`)).toBe(1_700_000_000_001);
    expect(idTime('no-time-here')).toBe(0);
    const ids = [`m-a-${t(1_700_000_000_000)}aaaa`, `m-b-${t(1_700_000_000_005)}aaaa`, `m-c-${t(1_700_000_000_005)}aaaa`, 'm-odd'];
    expect(idsAfter(ids, 'newest')).toEqual([ids[2], ids[1], ids[0], 'm-odd']);
    expect(idsAfter(ids, 'newest', ids[1])).toEqual([ids[0], 'm-odd']);
    expect(idsAfter(ids, 'newest', undefined, 'm-b-')).toEqual([ids[1]]);
  });
});

describe('the pager', () => {
  const ids = Array.from({ length: 25 }, (_, i) => `w-${String(i).padStart(2, '0')}`);

  it('walks every record once, in order, limit per page, the last page without a cursor', async () => {
    const pages = await walk(ids, 10);
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(pages.flat()).toEqual(ids);
    expect((await walk(ids, 25)).length).toBe(1);
    expect(await walk([], 10)).toEqual([[]]);
  });

  it('filters server-side, and bounds the records one page examines', async () => {
    const even = (id: string) => Number(id.slice(2)) % 2 === 0;
    expect((await walk(ids, 4, even)).flat()).toEqual(ids.filter(even));
    // a filter matching nothing: partial (empty) pages of at most `budget` examined, each with a cursor, then the end
    const examined: number[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await collectPage(
        idsAfter(ids, 'id', after),
        async (chunk) => {
          examined.push(chunk.length);
          return chunk;
        },
        { limit: 5, keep: () => false, budget: 10 },
      );
      expect(page.items).toEqual([]);
      if (!page.nextCursor) break;
      after = decodeCursor(page.nextCursor)!;
    }
    expect(examined.reduce((a, b) => a + b)).toBe(25);
    expect(Math.max(...examined)).toBeLessThanOrEqual(10);
  });

  it('is stable under inserts and deletes between pages: nothing repeats, nothing present throughout is missed', async () => {
    const store = new Set(ids);
    const seen: string[] = [];
    let after: string | undefined;
    for (let round = 0; ; round++) {
      const page = await collectPage(idsAfter([...store], 'id', after), async (chunk) => chunk.map((id) => (store.has(id) ? id : null)), { limit: 7 });
      seen.push(...page.items);
      if (!page.nextCursor) break;
      after = decodeCursor(page.nextCursor)!;
      // between pages: the page's last record and one not yet read are deleted, one before and one after the cursor are added
      store.delete(after);
      store.delete(`w-${String(20 + round).padStart(2, '0')}`);
      store.add(`w-0${round}a`);
      store.add(`w-9${round}`);
    }
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...seen].sort());
    const throughout = ids.filter((id) => !['w-20', 'w-21', 'w-22', 'w-23'].includes(id));
    for (const id of throughout) expect(seen).toContain(id);
    // added after the cursor: seen; added before it: not (the walk already passed there)
    expect(seen).toContain('w-90');
    expect(seen).not.toContain('w-03a');
  });

  it('skips records gone between reading the ids and reading the records', async () => {
    const page = await collectPage(['a', 'b', 'c'], async (chunk) => chunk.map((id) => (id === 'b' ? null : id)), { limit: 2 });
    expect(page.items).toEqual(['a', 'c']);
    expect(page.nextCursor).toBeNull();
  });

  it('pages a list in memory the same way', async () => {
    const tokens = ['zed', 'bootstrap', 'ops', 'ro'].map((name) => ({ name }));
    const first = await pageOfList(tokens, (t) => t.name, { limit: 3 });
    expect(first.items.map((t) => t.name)).toEqual(['bootstrap', 'ops', 'ro']);
    const second = await pageOfList(tokens, (t) => t.name, { limit: 3, after: decodeCursor(first.nextCursor!)! });
    expect(second).toEqual({ items: [{ name: 'zed' }], nextCursor: null });
  });
});
