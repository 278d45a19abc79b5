/**
 * A change log beside a hash of records, so that a process can keep a copy of the whole hash and
 * bring it up to date by reading only what changed (RecordCache). Every write of a record, in the
 * same Lua step as the write itself, takes the next revision (`<hash>:rev`, INCR) and files the
 * record's id under it in a sorted set (`<hash>:log`, ZADD: one entry per id, its latest
 * revision). A reader that knows revision r asks for the ids filed after r and reads just those.
 * Ids filed more than TRIM_BEHIND revisions ago are dropped from the log from time to time; the
 * highest revision dropped is kept (`<hash>:floor`), and a reader behind it reads the whole hash.
 */
import { changeLogKeys, type ChangeLogKeys } from '@ferry/protocol';

export { changeLogKeys, type ChangeLogKeys };

/** Revisions kept in the log: a reader further behind than this reads everything again. */
export const TRIM_BEHIND = 50_000;
/** The log is trimmed on every TRIM_EVERY-th revision (a cheap write otherwise). */
const TRIM_EVERY = 1_000;

/**
 * Lua: files ARGV id under the next revision of KEYS (rev, log, floor); trims when due. Meant to
 * be pasted after a script's write (the `file(id)` function), so write and filing are one step.
 */
export const FILE_CHANGE_LUA = `
local function file(revKey, logKey, floorKey, id)
  local r = redis.call('incr', revKey)
  redis.call('zadd', logKey, r, id)
  if r % ${TRIM_EVERY} == 0 and r > ${TRIM_BEHIND} then
    redis.call('zremrangebyscore', logKey, '-inf', r - ${TRIM_BEHIND})
    redis.call('set', floorKey, r - ${TRIM_BEHIND})
  end
  return r
end
`;

/** KEYS: hash, rev, log, floor; ARGV: id, json, [id, json …]. */
export const PUT_LOGGED = `${FILE_CHANGE_LUA}
for i = 1, #ARGV, 2 do
  redis.call('hset', KEYS[1], ARGV[i], ARGV[i + 1])
  file(KEYS[2], KEYS[3], KEYS[4], ARGV[i])
end
return 1`;

/** KEYS: hash, rev, log, floor; ARGV: id, json. 1 when stored, 0 when the id existed. */
export const INSERT_LOGGED = `${FILE_CHANGE_LUA}
if redis.call('hsetnx', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
file(KEYS[2], KEYS[3], KEYS[4], ARGV[1])
return 1`;

/** KEYS: hash, rev, log, floor; ARGV: id. */
export const REMOVE_LOGGED = `${FILE_CHANGE_LUA}
if redis.call('hdel', KEYS[1], ARGV[1]) == 1 then file(KEYS[2], KEYS[3], KEYS[4], ARGV[1]) end
return 1`;
