import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { isSameProcessAlive, processStartTime } from '../proc.ts';

/** One thing the lab created, in creation order; teardown walks them backwards. */
export const LabItem = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('link'), name: z.string() }),
  z.object({ kind: z.literal('netns'), name: z.string() }),
  z.object({ kind: z.literal('dir'), path: z.string() }),
  z.object({ kind: z.literal('cgroup'), path: z.string() }),
  /** an agent config whose containers must be destroyed before the hosts go */
  z.object({ kind: z.literal('agent'), config: z.string() }),
]);
export type LabItem = z.infer<typeof LabItem>;

export const LabRecord = z.object({
  labId: z.string(),
  owner: z.object({ pid: z.number().int(), startTime: z.string() }),
  items: z.array(LabItem),
});
export type LabRecord = z.infer<typeof LabRecord>;

/**
 * Every live lab on this machine leaves a pointer in /run/ferry-labs (tmpfs: gone after a reboot,
 * like the namespaces and links it points at). A lab whose owner process died is a leftover.
 */
export const LAB_INDEX_DIR = process.env.FERRY_LAB_INDEX_DIR ?? '/run/ferry-labs';

/** Writes the record before each creation step, so a crash mid-way still leaves a complete list. */
export class LabJournal {
  readonly record: LabRecord;

  constructor(
    readonly file: string,
    labId: string,
  ) {
    this.record = {
      labId,
      owner: { pid: process.pid, startTime: processStartTime(process.pid) ?? '' },
      items: [],
    };
    mkdirSync(LAB_INDEX_DIR, { recursive: true });
    writeFileSync(join(LAB_INDEX_DIR, `${labId}.json`), JSON.stringify({ record: file }));
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
    rmSync(join(LAB_INDEX_DIR, `${this.record.labId}.json`), { force: true });
  }
}

export function readLabRecord(file: string): LabRecord | null {
  try {
    return LabRecord.parse(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    return null;
  }
}

/** Record files of labs whose owner is gone. */
export function orphanedLabRecords(): string[] {
  let entries: string[] = [];
  try {
    entries = readdirSync(LAB_INDEX_DIR);
  } catch {
    return [];
  }
  const orphans: string[] = [];
  for (const entry of entries) {
    const pointer = join(LAB_INDEX_DIR, entry);
    let file: string;
    try {
      file = z.object({ record: z.string() }).parse(JSON.parse(readFileSync(pointer, 'utf8'))).record;
    } catch {
      rmSync(pointer, { force: true });
      continue;
    }
    const record = readLabRecord(file);
    if (!record) {
      rmSync(pointer, { force: true }); // nothing left to tear down
      continue;
    }
    if (!isSameProcessAlive(record.owner.pid, record.owner.startTime)) orphans.push(file);
  }
  return orphans;
}

export function removeIndexEntry(labId: string): void {
  rmSync(join(LAB_INDEX_DIR, `${labId}.json`), { force: true });
}
