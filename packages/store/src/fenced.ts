import type { Redis } from 'ioredis';
import { WORKLOAD_INDEX_FIELD, type MigrationRecord, type WorkloadRecord } from '@ferry/protocol';
import { FILE_CHANGE_LUA, changeLogKeyList, type ChangeLogKeys } from './changelog.ts';
import { fieldIndexKeyList, fieldIndexLua, type FieldIndexKeys } from './field-index.ts';
import { LockLostError, type LockFence } from './lock.ts';

// Each script writes only while KEYS[1] (the lock) still holds ARGV[1] (this holder's token):
// the check and the write are one step in Redis, so no other holder slips in between.
const PUT_FENCED = `
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
return 1`;
// the workloads hash keeps a change log (changelog.ts): KEYS[3..6] are its rev, log, floor and
// ids; and its index by host (field-index.ts): KEYS[7..8]
const PUT_WORKLOAD_FENCED = `${FILE_CHANGE_LUA}${fieldIndexLua(WORKLOAD_INDEX_FIELD)}
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
file(3, ARGV[2], true)
indexField(7, ARGV[2], ARGV[3])
return 1`;
// KEYS: lock, workloads, migrations, then the workloads' rev, log, floor and ids, and its host index
const COMMIT_FENCED = `${FILE_CHANGE_LUA}${fieldIndexLua(WORKLOAD_INDEX_FIELD)}
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('hset', KEYS[2], ARGV[2], ARGV[3])
redis.call('hset', KEYS[3], ARGV[4], ARGV[5])
file(4, ARGV[2], true)
indexField(8, ARGV[2], ARGV[3])
return 1`;

/** The writes of a job that holds a workload's lock (a migration), each refused once it is lost. */
export interface WorkloadWrites {
  /** throws LockLostError when the lock is no longer this holder's */
  check(): Promise<void>;
  putMigration(record: MigrationRecord): Promise<void>;
  putWorkload(record: WorkloadRecord): Promise<void>;
  /** ownership of the workload and the migration's record change together */
  commitMigration(workload: WorkloadRecord, migration: MigrationRecord): Promise<void>;
}

export interface FencedKeys {
  workloads: string;
  /** the workloads hash's change log */
  workloadChanges: ChangeLogKeys;
  /** the workloads hash's index by WORKLOAD_INDEX_FIELD */
  workloadIndex: FieldIndexKeys;
  migrations: string;
}

/** WorkloadWrites under a lock's fence: every write is checked against the lock in Redis itself. */
export class FencedWrites implements WorkloadWrites {
  constructor(
    private readonly redis: Redis,
    private readonly keys: FencedKeys,
    private readonly fence: LockFence,
  ) {}

  async check(): Promise<void> {
    if ((await this.redis.get(this.fence.key)) !== this.fence.token) throw new LockLostError(this.fence.key);
  }

  async putMigration(record: MigrationRecord): Promise<void> {
    this.landed(await this.redis.eval(PUT_FENCED, 2, this.fence.key, this.keys.migrations, this.fence.token, record.id, JSON.stringify(record)));
  }

  async putWorkload(record: WorkloadRecord): Promise<void> {
    const changes = [...changeLogKeyList(this.keys.workloadChanges), ...fieldIndexKeyList(this.keys.workloadIndex)];
    this.landed(await this.redis.eval(PUT_WORKLOAD_FENCED, 2 + changes.length, this.fence.key, this.keys.workloads, ...changes, this.fence.token, record.spec.id, JSON.stringify(record)));
  }

  async commitMigration(workload: WorkloadRecord, migration: MigrationRecord): Promise<void> {
    const changes = [...changeLogKeyList(this.keys.workloadChanges), ...fieldIndexKeyList(this.keys.workloadIndex)];
    this.landed(
      await this.redis.eval(
        COMMIT_FENCED,
        3 + changes.length,
        this.fence.key,
        this.keys.workloads,
        this.keys.migrations,
        ...changes,
        this.fence.token,
        workload.spec.id,
        JSON.stringify(workload),
        migration.id,
        JSON.stringify(migration),
      ),
    );
  }

  private landed(result: unknown): void {
    if (result !== 1) throw new LockLostError(this.fence.key);
  }
}
