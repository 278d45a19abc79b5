/**
 * A change log beside a hash of records, so that a process can keep a copy of the whole hash and
 * bring it up to date by reading only what changed (RecordCache). Every write of a record, in the
 * same Lua step as the write itself, takes the next revision (`<hash>:rev`, INCR) and files the
 * record's id under it in a sorted set (`<hash>:log`, ZADD: one entry per id, its latest
 * revision). A reader that knows revision r asks for the ids filed after r and reads just those.
 * Ids filed more than TRIM_BEHIND revisions ago are dropped from the log from time to time; the
 * highest revision dropped is kept (`<hash>:floor`), and a reader behind it reads the whole hash.
 * The same step keeps `<hash>:ids`, every id of the hash in byte order, the index a page of the
 * list reads its ids from (HashRecords.page).
 */
import { changeLogKeys, type ChangeLogKeys } from '@ferry/protocol';

export { changeLogKeys, type ChangeLogKeys };

/** Revisions kept in the log: a reader further behind than this reads everything again. */
export const TRIM_BEHIND = 50_000;
/** The log is trimmed on every TRIM_EVERY-th revision (a cheap write otherwise). */
const TRIM_EVERY = 1_000;

/**
 * Lua: files ARGV id under the next revision of the change log whose keys (rev, log, floor, ids)
 * start at KEYS[k]; trims when due; adds the id to the index (`present`) or takes it out. Meant to
 * be pasted before a script that writes and then calls `file(k, id, present)`, so the write, its
 * filing and the index are one step.
 */
export const FILE_CHANGE_LUA = `
local function file(k, id, present)
  local r = redis.call('incr', KEYS[k])
  redis.call('zadd', KEYS[k + 1], r, id)
  if r % ${TRIM_EVERY} == 0 and r > ${TRIM_BEHIND} then
    redis.call('zremrangebyscore', KEYS[k + 1], '-inf', r - ${TRIM_BEHIND})
    redis.call('set', KEYS[k + 2], r - ${TRIM_BEHIND})
  end
  if present then redis.call('zadd', KEYS[k + 3], 0, id) else redis.call('zrem', KEYS[k + 3], id) end
  return r
end
`;

/** The change log's keys in the order FILE_CHANGE_LUA's `file` expects them. */
export const changeLogKeyList = (c: ChangeLogKeys): string[] => [c.rev, c.log, c.floor, c.ids];

/** KEYS: hash, rev, log, floor, ids; ARGV: id, json, [id, json …]. */
export const PUT_LOGGED = `${FILE_CHANGE_LUA}
for i = 1, #ARGV, 2 do
  redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1])
  file(2, ARGV[i], true)
end
return 1`;

/** KEYS: hash, rev, log, floor, ids; ARGV: id, json. 1 when stored, 0 when the id existed. */
export const INSERT_LOGGED = `${FILE_CHANGE_LUA}
if redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
file(2, ARGV[1], true)
return 1`;

/** KEYS: hash, rev, log, floor, ids; ARGV: id. */
export const REMOVE_LOGGED = `${FILE_CHANGE_LUA}
if redis.call('hdel', KEYS[1], ARGV[1]) == 1 then file(2, ARGV[1], false) end
return 1`;

/**
 * KEYS: hash, ids. Builds the index again from the hash's ids when their counts differ (a Redis
 * written by a Ferry from before the index, or the index lost alone); 1 when it did. One step, so
 * no write lands half-indexed.
 */
export const REINDEX = `
if redis.call('hlen', KEYS[1]) == redis.call('zcard', KEYS[2]) then return 0 end
redis.call('del', KEYS[2])
local ids = redis.call('hkeys', KEYS[1])
for i = 1, #ids, 1000 do
  local args = {}
  for j = i, math.min(i + 999, #ids) do
    args[#args + 1] = 0
    args[#args + 1] = ids[j]
  end
  redis.call('zadd', KEYS[2], unpack(args))
end
return 1`;
