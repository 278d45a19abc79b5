import type { z } from 'zod';
import type { HashRecords } from './records.ts';

/**
 * Kept in step with a RecordCache's copy (an index derived from the records): told of every
 * record the cache takes in, changes or drops, and told to start over before a whole read.
 */
export interface RecordCacheFollower<T> {
  reset(): void;
  changed(id: string, before: T | undefined, after: T | undefined): void;
}

/**
 * A process's copy of every record of a hash that keeps a change log (changelog.ts), brought up
 * to date by reading only the records written since the last refresh: one round trip for the log,
 * one HMGET for what changed. The first refresh, a reader behind the log's floor, a revision
 * that went backwards (Redis lost its data and counts from 0 again) and a log that no longer files
 * the newest change this copy read at its revision or later (Redis lost its last writes — an AOF
 * synced every second — and counted past them again) read the whole hash.
 *
 * A refresh reflects every write that completed before it was called (calls run one after
 * another), which is what the scheduler's placement relies on under its placement lock.
 */
export class RecordCache<S extends z.ZodType> {
  private readonly records = new Map<string, z.output<S>>();
  private rev: number | null = null;
  /** the id filed at `rev` (the newest change this copy holds), to notice a log that lost it */
  private newestId: string | null = null;
  private chain: Promise<void> = Promise.resolve();
  /** the refresh that has not started yet: callers meanwhile share it */
  private next: Promise<void> | null = null;
  /** full reads and incremental ones, for tests and the benchmark */
  readonly stats = { full: 0, incremental: 0, changed: 0 };

  constructor(
    private readonly hash: HashRecords<S>,
    private readonly follower?: RecordCacheFollower<z.output<S>>,
  ) {
    if (!hash.changes) throw new Error(`${hash.key} keeps no change log: a RecordCache cannot follow it`);
  }

  /**
   * Brings the copy up to date and returns it (the map is the cache's own: do not change it).
   * Calls made while a refresh runs share the one that starts after it.
   */
  async refresh(): Promise<ReadonlyMap<string, z.output<S>>> {
    if (!this.next) {
      const run = this.chain.then(() => {
        this.next = null;
        return this.update();
      });
      this.next = run;
      this.chain = run.catch(() => undefined);
    }
    await this.next;
    return this.records;
  }

  /** The records as of the last refresh. */
  values(): Array<z.output<S>> {
    return [...this.records.values()];
  }

  private async update(): Promise<void> {
    const { redis } = this.hash;
    const keys = this.hash.changes!;
    if (this.rev === null) return this.readAll();
    const replies = await redis
      .multi()
      .get(keys.rev)
      .get(keys.floor)
      .zrangebyscore(keys.log, `(${this.rev}`, '+inf', 'WITHSCORES')
      .zscore(keys.log, this.newestId ?? '')
      .exec();
    if (!replies) throw new Error('the change log read was aborted');
    for (const [err] of replies) if (err) throw err;
    const current = Number(replies[0]![1] ?? 0);
    const floor = Number(replies[1]![1] ?? 0);
    if (current < this.rev || floor > this.rev) return this.readAll();
    const newestFiled = replies[3]![1] === null ? null : Number(replies[3]![1]);
    if (this.newestId !== null && (newestFiled === null || newestFiled < this.rev)) return this.readAll();
    const log = replies[2]![1] as string[];
    if (log.length === 0) return;
    const ids: string[] = [];
    let newest = this.rev;
    let newestId = this.newestId;
    for (let i = 0; i < log.length; i += 2) {
      const rev = Number(log[i + 1]);
      ids.push(log[i]!);
      if (rev > newest) [newest, newestId] = [rev, log[i]!];
    }
    const values = await redis.hmget(this.hash.key, ...ids);
    ids.forEach((id, i) => {
      const json = values[i];
      const record = json == null ? null : this.hash.parse(id, json);
      this.follower?.changed(id, this.records.get(id), record ?? undefined);
      if (record === null) this.records.delete(id);
      else this.records.set(id, record);
    });
    [this.rev, this.newestId] = [newest, newestId];
    this.stats.incremental++;
    this.stats.changed += ids.length;
  }

  /** The revision first, then the hash: whatever is written in between is read again next time. */
  private async readAll(): Promise<void> {
    const { redis } = this.hash;
    const keys = this.hash.changes!;
    const rev = Number((await redis.get(keys.rev)) ?? 0);
    // the id filed at that revision (none when the log was trimmed past it: no check next time)
    const newest = rev > 0 ? await redis.zrangebyscore(keys.log, rev, rev) : [];
    const raw = await redis.hgetall(this.hash.key);
    this.records.clear();
    this.follower?.reset();
    for (const [id, json] of Object.entries(raw)) {
      const record = this.hash.parse(id, json);
      if (record === null) continue;
      this.records.set(id, record);
      this.follower?.changed(id, undefined, record);
    }
    [this.rev, this.newestId] = [rev, newest[0] ?? null];
    this.stats.full++;
  }
}
