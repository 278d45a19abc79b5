import type { Redis } from 'ioredis';
import type { z } from 'zod';
import type { Logger } from '@ferry/runtime';
import { DEFAULT_PAGE_LIMIT, collectPage, idsAfter, pageBudget, type Page, type PageOrder } from '@ferry/protocol';
import { INSERT_LOGGED, PUT_LOGGED, REINDEX, REMOVE_LOGGED, changeLogKeyList, changeLogKeys, type ChangeLogKeys } from './changelog.ts';

/** KEYS: hash; ARGV: text. Flat id, json pairs of the records whose JSON contains the text (plain find). */
const CONTAINING = `
local out = {}
local all = redis.call('hgetall', KEYS[1])
for i = 1, #all, 2 do
  if string.find(all[i + 1], ARGV[1], 1, true) then
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out`;

export interface PageRequest {
  /** records per page (default 100) */
  limit?: number | undefined;
  /** the id the previous page ended at (a decoded cursor) */
  after?: string | undefined;
}

export interface PageOptions<R, V> {
  /** default `id` (ascending); `newest` for ids that carry their creation time */
  order?: PageOrder;
  /** only ids starting with this (a cheap pre-filter before any record is read) */
  prefix?: string;
  /** what a page holds for each record, made per chunk of records (e.g. with their hosts) */
  view?: (records: R[]) => Promise<V[]>;
  /** server-side filter, on the view (undefined: none, and a page reads exactly its records) */
  keep?: ((view: V) => boolean) | undefined;
}

/**
 * JSON records in one Redis hash (field = id). Every read is validated: a record that no longer
 * parses is logged and skipped, never trusted. With `changeLog`, every write also files the id in
 * the hash's change log (changelog.ts), so RecordCache copies follow it by reading only changes.
 */
export class HashRecords<S extends z.ZodType> {
  /** the change log's keys, when writes keep one */
  readonly changes: ChangeLogKeys | null;

  constructor(
    readonly redis: Redis,
    readonly key: string,
    private readonly schema: S,
    private readonly log: Logger,
    private readonly what: string,
    options: { changeLog?: boolean } = {},
  ) {
    this.changes = options.changeLog ? changeLogKeys(key) : null;
  }

  private logged(script: string, args: string[]): Promise<unknown> {
    const keys = changeLogKeyList(this.changes!);
    return this.redis.eval(script, 1 + keys.length, this.key, ...keys, ...args);
  }

  parse(id: string, json: string): z.output<S> | null {
    try {
      return this.schema.parse(JSON.parse(json));
    } catch (err) {
      this.log.warn({ id, err }, `unreadable ${this.what} record in Redis; skipped`);
      return null;
    }
  }

  async get(id: string): Promise<z.output<S> | null> {
    const json = await this.redis.hget(this.key, id);
    return json === null ? null : this.parse(id, json);
  }

  /** Several records in one round trip, in the order asked (null where there is none). */
  async getMany(ids: string[]): Promise<Array<z.output<S> | null>> {
    if (ids.length === 0) return [];
    const values = await this.redis.hmget(this.key, ...ids);
    return values.map((json, i) => (json === null ? null : this.parse(ids[i]!, json)));
  }

  async all(): Promise<Array<z.output<S>>> {
    const raw = await this.redis.hgetall(this.key);
    return Object.entries(raw)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([id, json]) => this.parse(id, json))
      .filter((record): record is z.output<S> => record !== null);
  }

  /**
   * The records whose stored JSON contains `text`, matched inside Redis (a pre-filter: only those
   * cross the wire and are parsed; the caller checks each parsed record). The failover detector
   * asks every second which hosts are down: reading and validating every host record for it cost
   * ~14 % of the scheduler's CPU at 1,000 hosts.
   */
  async allContaining(text: string): Promise<Array<z.output<S>>> {
    const flat = (await this.redis.eval(CONTAINING, 1, this.key, text)) as string[];
    const out: Array<z.output<S>> = [];
    for (let i = 0; i < flat.length; i += 2) {
      const record = this.parse(flat[i]!, flat[i + 1]!);
      if (record !== null) out.push(record);
    }
    return out;
  }

  /** Every id (HKEYS: the ids only, never the records). */
  async ids(): Promise<string[]> {
    return this.redis.hkeys(this.key);
  }

  /**
   * One page of records in a stable order: reads the ids the page may examine, then only their
   * records, a chunk per round trip (HMGET). A filter that matches few records answers partial
   * pages, each with a cursor, rather than reading the whole hash at once. In id order a hash with
   * a change log reads its ids from its sorted index (ZRANGEBYLEX: the page's ids only); otherwise
   * every id is read (HKEYS: cheap next to the records) and sorted here.
   */
  async page<V = z.output<S>>(request: PageRequest, options: PageOptions<z.output<S>, V> = {}): Promise<Page<V>> {
    const limit = request.limit ?? DEFAULT_PAGE_LIMIT;
    const order = options.order ?? 'id';
    let ids: string[];
    let truncated = false;
    if (this.changes && order === 'id') {
      // a filtered page may examine its whole budget; an unfiltered one its records and one more
      // (whether a next page exists); a record gone meanwhile makes the page end early, cursor kept
      const count = (options.keep ? pageBudget(limit) : limit) + 1;
      ids = await this.indexedIdsAfter(request.after, options.prefix, count);
      truncated = ids.length === count;
    } else {
      ids = idsAfter(await this.ids(), order, request.after, options.prefix);
    }
    const load = async (chunk: string[]): Promise<Array<V | null>> => {
      const records = await this.getMany(chunk);
      if (!options.view) return records as Array<V | null>;
      const present = records.filter((r): r is z.output<S> => r !== null);
      const views = await options.view(present);
      let next = 0;
      return records.map((r) => (r === null ? null : views[next++]!));
    };
    return collectPage(ids, load, { limit, truncated, ...(options.keep ? { keep: options.keep } : {}) });
  }

  /** Up to `count` ids after `after` (and starting with `prefix`) in byte order, from the index. */
  private async indexedIdsAfter(after: string | undefined, prefix: string | undefined, count: number): Promise<string[]> {
    const index = this.changes!.ids;
    await this.redis.eval(REINDEX, 2, this.key, index);
    // ids are ASCII (protocol ids): every id with the prefix sorts below prefix + U+00FF's bytes
    const start = prefix !== undefined && (after === undefined || after < prefix) ? `[${prefix}` : after !== undefined ? `(${after}` : '-';
    const end = prefix !== undefined ? `(${prefix}\u00ff` : '+';
    const ids = await this.redis.zrangebylex(index, start, end, 'LIMIT', 0, count);
    return prefix === undefined ? ids : ids.filter((id) => id.startsWith(prefix));
  }

  async put(id: string, record: z.output<S>): Promise<void> {
    if (this.changes) await this.logged(PUT_LOGGED, [id, JSON.stringify(record)]);
    else await this.redis.hset(this.key, id, JSON.stringify(record));
  }

  async putMany(entries: Array<[string, z.output<S>]>): Promise<void> {
    if (entries.length === 0) return;
    const args = entries.flatMap(([id, record]) => [id, JSON.stringify(record)]);
    if (this.changes) await this.logged(PUT_LOGGED, args);
    else await this.redis.hset(this.key, ...args);
  }

  /** Stores only when no record with this id exists; false when one does. */
  async insert(id: string, record: z.output<S>): Promise<boolean> {
    if (this.changes) return (await this.logged(INSERT_LOGGED, [id, JSON.stringify(record)])) === 1;
    return (await this.redis.hsetnx(this.key, id, JSON.stringify(record))) === 1;
  }

  async remove(id: string): Promise<void> {
    if (this.changes) await this.logged(REMOVE_LOGGED, [id]);
    else await this.redis.hdel(this.key, id);
  }
}
