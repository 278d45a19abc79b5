import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { decodeCursor } from '@ferry/protocol';
import { createLogger } from '@ferry/runtime';
import { HashRecords } from './records.ts';

const Item = z.object({ id: z.string(), color: z.string() });
type Item = z.infer<typeof Item>;

/** The two commands paging sends (HKEYS, HMGET), over a Map; counts what was read. */
function fakeRedis(hash: Map<string, string>) {
  const reads = { hkeys: 0, fields: 0, hgetall: 0 };
  const redis = {
    hkeys: async () => {
      reads.hkeys++;
      return [...hash.keys()];
    },
    hmget: async (_key: string, ...ids: string[]) => {
      reads.fields += ids.length;
      return ids.map((id) => hash.get(id) ?? null);
    },
    hgetall: async () => {
      reads.hgetall++;
      return Object.fromEntries(hash);
    },
  };
  return { redis: redis as unknown as Redis, reads };
}

describe('HashRecords.page', () => {
  const log = createLogger('test').child({}, { level: 'silent' });
  const hash = new Map<string, string>();
  for (let i = 0; i < 500; i++) {
    const id = `w-${String(i).padStart(3, '0')}`;
    hash.set(id, JSON.stringify({ id, color: i % 50 === 0 ? 'red' : 'blue' }));
  }
  hash.set('w-bad', '{not json');

  it('reads the ids and only the records of the page, never the whole hash', async () => {
    const { redis, reads } = fakeRedis(hash);
    const records = new HashRecords(redis, 'k', Item, log, 'item');
    const page = await records.page({ limit: 20 });
    expect(page.items.map((r) => r.id)).toEqual([...hash.keys()].slice(0, 20));
    expect(decodeCursor(page.nextCursor!)).toBe('w-019');
    expect(reads).toEqual({ hkeys: 1, fields: 20, hgetall: 0 });
    const next = await records.page({ limit: 20, after: 'w-019' });
    expect(next.items[0]!.id).toBe('w-020');
  });

  it('filters on the view, walking every page to the end (unreadable records skipped)', async () => {
    const { redis, reads } = fakeRedis(hash);
    const records = new HashRecords(redis, 'k', Item, log, 'item');
    const seen: string[] = [];
    let after: string | undefined;
    let pages = 0;
    for (;;) {
      const page = await records.page<Item & { shout: string }>(
        { limit: 3, after },
        { view: async (items) => items.map((i) => ({ ...i, shout: i.color.toUpperCase() })), keep: (v) => v.shout === 'RED' },
      );
      pages++;
      seen.push(...page.items.map((i) => i.id));
      if (!page.nextCursor) break;
      after = decodeCursor(page.nextCursor)!;
    }
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => `w-${String(i * 50).padStart(3, '0')}`));
    expect(pages).toBe(4);
    expect(reads.hgetall).toBe(0);
  });
});
