import { z } from 'zod';

/**
 * Paging of every list route: `?limit=N&cursor=…` answers one page and `nextCursor` (null on the
 * last page). The cursor is opaque to clients: it names the last record of the page (base64url of
 * a small JSON), and the next page starts strictly after that record in the list's fixed order —
 * so records added or removed meanwhile neither repeat nor shift a page (one added before the
 * cursor is simply not seen by this walk; one removed is not returned).
 */
export const DEFAULT_PAGE_LIMIT = 100;
export const MAX_PAGE_LIMIT = 1000;
/** the longest cursor accepted (an id is at most a few hundred characters) */
const MAX_CURSOR_LENGTH = 1024;

const CursorBody = z.strictObject({ v: z.literal(1), after: z.string().min(1).max(600) });

export function encodeCursor(afterId: string): string {
  return Buffer.from(JSON.stringify({ v: 1, after: afterId }), 'utf8').toString('base64url');
}

/** The id a cursor resumes after, or null when it is not a cursor this API made. */
export function decodeCursor(cursor: string): string | null {
  if (cursor.length === 0 || cursor.length > MAX_CURSOR_LENGTH || !/^[A-Za-z0-9_-]+$/.test(cursor)) return null;
  try {
    const parsed = CursorBody.safeParse(JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data.after : null;
  } catch {
    return null;
  }
}

/** `?limit`: 1 to 1000, 100 when absent. */
export const PageLimit = z.coerce.number().int().min(1).max(MAX_PAGE_LIMIT, `at most ${MAX_PAGE_LIMIT} per page: follow nextCursor for more`);

/** `?cursor`: the `nextCursor` of the previous page, unchanged; parsed to the id it resumes after. */
export const PageCursor = z
  .string()
  .max(MAX_CURSOR_LENGTH)
  .transform((cursor, ctx) => {
    const after = decodeCursor(cursor);
    if (after === null) {
      ctx.addIssue({ code: 'custom', message: 'not a cursor from this API: pass the nextCursor of the previous page unchanged' });
      return z.NEVER;
    }
    return after;
  });

/** The query parameters every list route takes (spread into its query schema). */
export const pageQuery = {
  /** records per page (default 100, at most 1000) */
  limit: PageLimit.optional(),
  /** where to resume: the previous page's nextCursor */
  cursor: PageCursor.optional(),
};

/** What every page answer carries beside its records. */
export const nextCursorField = {
  /** pass as `?cursor=` for the next page; null when this is the last */
  nextCursor: z.string().nullable(),
};

/** One page of records and where the next starts. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/**
 * The orders lists are paged in, both decided by the id alone (a page never needs the records to
 * know its order): `id` ascending byte order (hosts, workloads, tokens); `newest` first by the
 * time embedded in the id (`m-<workload>-<ms base36><rand>`, `p-<kind>-<ms base36><rand>`,
 * `f-<host>-<ms base36>`), ties by id descending (migrations, plans, failovers).
 */
export type PageOrder = 'id' | 'newest';

/** The creation time (ms) an id carries in the first 8 base-36 digits of its last segment; 0 when none. */
export function idTime(id: string): number {
  const last = id.slice(id.lastIndexOf('-') + 1, id.lastIndexOf('-') + 9);
  if (!/^[0-9a-z]{8}$/.test(last)) return 0;
  return parseInt(last, 36);
}

const byBytes = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function compareIds(order: PageOrder): (a: string, b: string) => number {
  if (order === 'id') return byBytes;
  return (a, b) => idTime(b) - idTime(a) || byBytes(b, a);
}

/** Ids in page order, only those strictly after `after` (which need not exist any more). */
export function idsAfter(ids: readonly string[], order: PageOrder, after?: string, prefix?: string): string[] {
  const compare = compareIds(order);
  const wanted = ids.filter((id) => (prefix === undefined || id.startsWith(prefix)) && (after === undefined || compare(id, after) > 0));
  if (order === 'id') return wanted.sort(byBytes);
  // the time of each id once, not per comparison
  const times = new Map(wanted.map((id) => [id, idTime(id)]));
  return wanted.sort((a, b) => times.get(b)! - times.get(a)! || byBytes(b, a));
}

export interface CollectOptions<T> {
  limit: number;
  /** server-side filter; default keeps every record */
  keep?: (record: T) => boolean;
  /** records examined at most per page (a filter matching few records answers partial pages, each with a cursor) */
  budget?: number;
  /** records loaded per round trip at least (default: those still wanted; 100 with a filter) */
  chunk?: number;
  /** `ids` is only the start of the ids after the cursor (more follow it): a page that uses them all still has a next */
  truncated?: boolean;
}

/**
 * How many records one page examines at most: ten pages' worth (at least 5,000), so a filter that
 * matches few records still answers in bounded time.
 */
export const pageBudget = (limit: number): number => Math.max(limit * 10, 5_000);

/**
 * One page from ids already in page order (see idsAfter): loads them in chunks, keeps those the
 * filter accepts, stops at `limit` kept or `budget` examined. The next cursor names the last record
 * examined when more ids follow it. Ids whose record is gone (null) are skipped.
 */
export async function collectPage<T>(ids: readonly string[], load: (ids: string[]) => Promise<Array<T | null>>, options: CollectOptions<T>): Promise<Page<T>> {
  const { limit, keep = () => true } = options;
  const budget = Math.max(options.budget ?? pageBudget(limit), limit);
  const items: T[] = [];
  let examined = 0;
  let lastId: string | null = null;
  let index = 0;
  // unfiltered, a page reads exactly its records; filtered, at least 100 a round trip
  const minChunk = options.chunk ?? (options.keep ? 100 : 1);
  while (index < ids.length && items.length < limit && examined < budget) {
    const size = Math.min(Math.max(limit - items.length, minChunk), budget - examined, ids.length - index);
    const chunk = ids.slice(index, index + size);
    const records = await load(chunk);
    for (let i = 0; i < chunk.length; i++) {
      index++;
      examined++;
      lastId = chunk[i]!;
      const record = records[i];
      if (record === null || record === undefined || !keep(record)) continue;
      items.push(record);
      if (items.length === limit) break;
    }
  }
  return { items, nextCursor: (index < ids.length || options.truncated === true) && lastId !== null ? encodeCursor(lastId) : null };
}

/** A page of a list already in memory (small, bounded lists such as tokens), in id order. */
export async function pageOfList<T>(items: readonly T[], idOf: (item: T) => string, request: { limit?: number | undefined; after?: string | undefined }): Promise<Page<T>> {
  const byId = new Map(items.map((item) => [idOf(item), item]));
  const ids = idsAfter([...byId.keys()], 'id', request.after);
  return collectPage(ids, async (chunk) => chunk.map((id) => byId.get(id) ?? null), { limit: request.limit ?? DEFAULT_PAGE_LIMIT });
}
