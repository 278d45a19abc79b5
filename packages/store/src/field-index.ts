/**
 * An index of a hash's ids by the value of one top-level string field of their records (the
 * workloads by `hostId`), kept by the same Lua step as the write it follows, so that one value's
 * records (one host's workloads) are read without scanning the hash:
 *
 * - `<hash>:<field>=<value>`: a sorted set (score 0: byte order, as `<hash>:ids`) of the ids whose
 *   record holds that value — a page of them is a ZRANGEBYLEX after the cursor;
 * - `<hash>:<field>-of`: every id of the hash → the value it is filed under ('' when the field is
 *   null or absent), so a write moves the id out of its previous set without reading the old record,
 *   and so that "is everything indexed?" is one count (HLEN against the hash's, as `:ids` does).
 *
 * The value is read from the record's JSON inside the script (cjson), never passed beside it, so
 * the index cannot disagree with the record written. The per-value sets are named inside the
 * script (not declared as KEYS): fine on one Redis, as Ferry runs it, not on Redis Cluster.
 */
import { fieldIndexKeys, type FieldIndexKeys } from '@ferry/protocol';

export { fieldIndexKeys, type FieldIndexKeys };

/** The index's keys in the order FIELD_INDEX_LUA's `indexField` expects them. */
export const fieldIndexKeyList = (k: FieldIndexKeys): string[] => [k.of, k.prefix];

/**
 * Lua: `indexField(k, id, json)` files `id` under the field's value in `json` (json nil: the record
 * was deleted, the id leaves the index); KEYS[k] is the `-of` hash, KEYS[k + 1] the sets' prefix.
 * Meant to be pasted before a script that writes and then calls it, as changelog.ts's `file`.
 */
export function fieldIndexLua(field: string): string {
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(field)) throw new Error(`not an indexable field name: ${field}`);
  return `
local function indexField(k, id, json)
  local value = ''
  if json then
    local ok, record = pcall(cjson.decode, json)
    if ok and type(record) == 'table' and type(record['${field}']) == 'string' then value = record['${field}'] end
  end
  local was = redis.call('hget', KEYS[k], id)
  if was == value and json then return end
  if was and was ~= '' then redis.call('zrem', KEYS[k + 1] .. was, id) end
  if not json then
    redis.call('hdel', KEYS[k], id)
    return
  end
  if value ~= '' then redis.call('zadd', KEYS[k + 1] .. value, 0, id) end
  redis.call('hset', KEYS[k], id, value)
end
`;
}

/**
 * The scripts of a hash that keeps a change log (changelog.ts) and a field index: the change
 * log's writes with the index kept in the same step. KEYS: hash, rev, log, floor, ids, `-of`,
 * prefix (changeLogKeyList, then fieldIndexKeyList).
 */
export function indexedWriteScripts(fileChangeLua: string, field: string) {
  const head = `${fileChangeLua}${fieldIndexLua(field)}`;
  return {
    /** ARGV: id, json, [id, json …] */
    put: `${head}
for i = 1, #ARGV, 2 do
  redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1])
  file(2, ARGV[i], true)
  indexField(6, ARGV[i], ARGV[i + 1])
end
return 1`,
    /** ARGV: id, json. 1 when stored, 0 when the id existed. */
    insert: `${head}
if redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
file(2, ARGV[1], true)
indexField(6, ARGV[1], ARGV[2])
return 1`,
    /** ARGV: id */
    remove: `${head}
if redis.call('hdel', KEYS[1], ARGV[1]) == 1 then
  file(2, ARGV[1], false)
  indexField(6, ARGV[1], nil)
end
return 1`,
  };
}

/** The ids the index build files per step (each step one Lua call: ~2,000 JSON decodes, a few ms). */
export const BUILD_CHUNK = 2000;

/**
 * KEYS: hash, ids (the hash's sorted id index, exact: REINDEX first), `-of`, prefix; ARGV: the id
 * to continue after ('' from the start), the chunk size. Files the next chunk of ids from their
 * records as they are now and returns the last id filed, or '' when the ids ran out. Ids are
 * taken in byte order from `:ids`, so a build resumes where it stopped; every step is atomic, and
 * writes between steps keep the index themselves, so a build racing writers (or another build)
 * ends exact.
 */
export function buildChunkLua(field: string): string {
  return `${fieldIndexLua(field)}
local start = '-'
if ARGV[1] ~= '' then start = '(' .. ARGV[1] end
local ids = redis.call('zrangebylex', KEYS[2], start, '+', 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(ids) do
  local json = redis.call('hget', KEYS[1], id)
  if json then indexField(3, id, json) end
end
if #ids < tonumber(ARGV[2]) then return '' end
return ids[#ids]`;
}

/** KEYS: hash, `-of`. 1 when every id of the hash is filed (the counts agree), else 0. */
export const FIELD_INDEX_COMPLETE = `
if redis.call('hlen', KEYS[1]) == redis.call('hlen', KEYS[2]) then return 1 end
return 0`;

/**
 * KEYS: hash, `-of`, prefix; ARGV: ids. Takes out of the index the ids whose record is gone
 * (left by a writer that did not keep the index: the only way `-of` outgrows the hash).
 */
export function pruneLua(field: string): string {
  return `${fieldIndexLua(field)}
for _, id in ipairs(ARGV) do
  if redis.call('hexists', KEYS[1], id) == 0 then indexField(2, id, nil) end
end
return 1`;
}
