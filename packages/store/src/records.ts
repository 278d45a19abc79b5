import type { Redis } from 'ioredis';
import type { z } from 'zod';
import type { Logger } from '@ferry/runtime';
import { DEFAULT_PAGE_LIMIT, collectPage, idsAfter, pageBudget, type Page, type PageOrder } from '@ferry/protocol';
import { FILE_CHANGE_LUA, INSERT_LOGGED, PUT_LOGGED, REINDEX, REMOVE_LOGGED, changeLogKeyList, changeLogKeys, type ChangeLogKeys } from './changelog.ts';
import { BUILD_CHUNK, FIELD_INDEX_COMPLETE, buildChunkLua, fieldIndexKeyList, fieldIndexKeys, indexedWriteScripts, pruneLua, type FieldIndexKeys } from './field-index.ts';

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
  /**
   * only the records whose indexed field (the hash's `indexBy`) holds this value: their ids are
   * read from that field's index, in id order, instead of every id of the hash (one host's
   * workloads). `keep` still applies to what is read.
   */
  indexed?: string | undefined;
}

/**
 * JSON records in one Redis hash (field = id). Every read is validated: a record that no longer
 * parses is logged and skipped, never trusted. With `changeLog`, every write also files the id in
 * the hash's change log (changelog.ts), so RecordCache copies follow it by reading only changes.
 */
export class HashRecords<S extends z.ZodType> {
  /** the change log's keys, when writes keep one */
  readonly changes: ChangeLogKeys | null;
  /** the index by one field's value (`indexBy`), when writes keep one (field-index.ts) */
  readonly fieldIndex: FieldIndexKeys | null;
  private readonly scripts: { put: string; insert: string; remove: string; build: string | null; prune: string | null };

  constructor(
    readonly redis: Redis,
    readonly key: string,
    private readonly schema: S,
    private readonly log: Logger,
    private readonly what: string,
    options: { changeLog?: boolean; indexBy?: string } = {},
  ) {
    this.changes = options.changeLog ? changeLogKeys(key) : null;
    if (options.indexBy !== undefined && !options.changeLog) throw new Error(`${key}: a field index is kept by the change log's writes (changeLog: true)`);
    this.fieldIndex = options.indexBy !== undefined ? fieldIndexKeys(key, options.indexBy) : null;
    this.scripts =
      options.indexBy !== undefined
        ? { ...indexedWriteScripts(FILE_CHANGE_LUA, options.indexBy), build: buildChunkLua(options.indexBy), prune: pruneLua(options.indexBy) }
        : { put: PUT_LOGGED, insert: INSERT_LOGGED, remove: REMOVE_LOGGED, build: null, prune: null };
  }

  private logged(script: string, args: string[]): Promise<unknown> {
    const keys = [...changeLogKeyList(this.changes!), ...(this.fieldIndex ? fieldIndexKeyList(this.fieldIndex) : [])];
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
   * a change log reads its ids from its sorted index (ZRANGEBYLEX: the page's ids only), and a
   * page of one value of its field index (`indexed`) from that value's set; otherwise every id is
   * read (HKEYS: cheap next to the records) and sorted here.
   */
  async page<V = z.output<S>>(request: PageRequest, options: PageOptions<z.output<S>, V> = {}): Promise<Page<V>> {
    const limit = request.limit ?? DEFAULT_PAGE_LIMIT;
    const order = options.order ?? 'id';
    let ids: string[];
    let truncated = false;
    // a filtered page may examine its whole budget; an unfiltered one its records and one more
    // (whether a next page exists); a record gone meanwhile makes the page end early, cursor kept
    const count = (options.keep ? pageBudget(limit) : limit) + 1;
    if (options.indexed !== undefined) {
      if (!this.fieldIndex || order !== 'id') throw new Error(`${this.key}: no field index to page in ${order} order`);
      ids = await this.fieldIdsAfter(options.indexed, request.after, options.prefix, count);
      truncated = ids.length === count;
    } else if (this.changes && order === 'id') {
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
    return this.idsInRange(index, after, prefix, count);
  }

  /** The same from the set of one value of the field index (the index built first if it is not). */
  private async fieldIdsAfter(value: string, after: string | undefined, prefix: string | undefined, count: number): Promise<string[]> {
    await this.ensureFieldIndex();
    return this.idsInRange(`${this.fieldIndex!.prefix}${value}`, after, prefix, count);
  }

  private async idsInRange(set: string, after: string | undefined, prefix: string | undefined, count: number): Promise<string[]> {
    // ids are ASCII (protocol ids): every id with the prefix sorts below prefix + U+00FF's bytes
    const start = prefix !== undefined && (after === undefined || after < prefix) ? `[${prefix}` : after !== undefined ? `(${after}` : '-';
    const end = prefix !== undefined ? `(${prefix}\u00ff` : '+';
    const ids = await this.redis.zrangebylex(set, start, end, 'LIMIT', 0, count);
    return prefix === undefined ? ids : ids.filter((id) => id.startsWith(prefix));
  }

  /**
   * Files every id in the field index when it does not hold as many ids as the hash (a Redis
   * written by a Ferry from before the index): ids whose record is gone out first (HSCAN of the
   * `-of` hash), then the ids of the hash in steps of BUILD_CHUNK, each one atomic Lua step (so
   * Redis is never held for the whole hash: ~2,000 records decoded per step). Writers keep the
   * index meanwhile, so a build that races them, or another replica's build, still ends exact.
   * True when it built.
   */
  async ensureFieldIndex(): Promise<boolean> {
    const index = this.fieldIndex!;
    if ((await this.redis.eval(FIELD_INDEX_COMPLETE, 2, this.key, index.of)) === 1) return false;
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(index.of, cursor, 'COUNT', BUILD_CHUNK);
      const ids = flat.filter((_, i) => i % 2 === 0);
      if (ids.length > 0) await this.redis.eval(this.scripts.prune!, 3, this.key, index.of, index.prefix, ...ids);
      cursor = next;
    } while (cursor !== '0');
    await this.redis.eval(REINDEX, 2, this.key, this.changes!.ids);
    let after = '';
    do after = (await this.redis.eval(this.scripts.build!, 4, this.key, this.changes!.ids, index.of, index.prefix, after, BUILD_CHUNK)) as string;
    while (after !== '');
    return true;
  }

  async put(id: string, record: z.output<S>): Promise<void> {
    if (this.changes) await this.logged(this.scripts.put, [id, JSON.stringify(record)]);
    else await this.redis.hset(this.key, id, JSON.stringify(record));
  }

  async putMany(entries: Array<[string, z.output<S>]>): Promise<void> {
    if (entries.length === 0) return;
    const args = entries.flatMap(([id, record]) => [id, JSON.stringify(record)]);
    if (this.changes) await this.logged(this.scripts.put, args);
    else await this.redis.hset(this.key, ...args);
  }

  /** Stores only when no record with this id exists; false when one does. */
  async insert(id: string, record: z.output<S>): Promise<boolean> {
    if (this.changes) return (await this.logged(this.scripts.insert, [id, JSON.stringify(record)])) === 1;
    return (await this.redis.hsetnx(this.key, id, JSON.stringify(record))) === 1;
  }

  async remove(id: string): Promise<void> {
    if (this.changes) await this.logged(this.scripts.remove, [id]);
    else await this.redis.hdel(this.key, id);
  }
}
