import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { isSameProcessAlive, processStartTime } from '@ferry/runtime';

/** One thing the lab created, in creation order; teardown walks them backwards. */
export const LabItem = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('link'), name: z.string() }),
  z.object({ kind: z.literal('netns'), name: z.string() }),
  z.object({ kind: z.literal('dir'), path: z.string() }),
  z.object({ kind: z.literal('cgroup'), path: z.string() }),
  /** the lab's agents name their containers' namespaces with this prefix (unique to the lab) */
  z.object({ kind: z.literal('netns-prefix'), prefix: z.string().min(4) }),
  /** an agent config whose containers must be destroyed before the hosts go */
  z.object({ kind: z.literal('agent'), config: z.string() }),
  /** a loop-mounted pool image (deploy/pool-image): unmounted before its directory goes */
  z.object({ kind: z.literal('mount'), path: z.string() }),
]);
export type LabItem = z.infer<typeof LabItem>;

export const LabRecord = z.object({
  labId: z.string(),
  owner: z.object({ pid: z.number().int(), startTime: z.string() }),
  items: z.array(LabItem),
});
export type LabRecord = z.infer<typeof LabRecord>;

/**
 * Every lab's journal lives in /run/ferry-labs: tmpfs, so it goes with a reboot exactly like the
 * namespaces and links it lists, and outside any state directory a caller might delete. A lab
 * whose owner process died is a leftover.
 */
export const LAB_INDEX_DIR = process.env.FERRY_LAB_INDEX_DIR ?? '/run/ferry-labs';

/** Writes the record before each creation step, so a crash mid-way still leaves a complete list. */
export class LabJournal {
  readonly record: LabRecord;
  readonly file: string;

  constructor(labId: string) {
    this.record = {
      labId,
      owner: { pid: process.pid, startTime: processStartTime(process.pid) ?? '' },
      items: [],
    };
    mkdirSync(LAB_INDEX_DIR, { recursive: true });
    this.file = join(LAB_INDEX_DIR, `${labId}.json`);
    this.flush();
  }

  add(item: LabItem): void {
    this.record.items.push(item);
    this.flush();
  }

  private flush(): void {
    writeFileSync(`${this.file}.tmp`, JSON.stringify(this.record, null, 2));
    renameSync(`${this.file}.tmp`, this.file);
  }

  /** After a complete teardown. */
  close(): void {
    rmSync(this.file, { force: true });
  }
}

export function readLabRecord(file: string): LabRecord | null {
  try {
    return LabRecord.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    return null;
  }
}

/** Journals of labs whose owner is gone. */
export function orphanedLabRecords(): LabRecord[] {
  let entries: string[] = [];
  try {
    entries = readdirSync(LAB_INDEX_DIR).filter((entry) => entry.endsWith('.json'));
  } catch {
    return [];
  }
  return entries.map((entry) => readLabRecord(join(LAB_INDEX_DIR, entry))).filter((record): record is LabRecord => record !== null && !isSameProcessAlive(record.owner.pid, record.owner.startTime));
}

export function removeLabRecord(labId: string): void {
  rmSync(join(LAB_INDEX_DIR, `${labId}.json`), { force: true });
}
