import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ContainerExit, ContainerState, WorkloadSpec } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';

/** What the agent keeps on disk per container, so it survives agent restarts. */
export const ContainerRecord = z.object({
  spec: WorkloadSpec,
  epoch: z.number().int().positive(),
  state: ContainerState,
  templateVersion: z.string(),
  rootfs: z.string(),
  /** network namespace of the current run; null while not running */
  netns: z.string().nullable(),
  pid: z.number().int().positive().nullable(),
  startedAt: z.number().int().nullable(),
  exit: ContainerExit.nullable(),
  createdAt: z.number().int(),
  /**
   * the cluster generation whose records last confirmed this copy as the workload's own
   * (`container.stamp`): with the spec and epoch, what lets the cluster rebuild the workload's
   * record after Redis lost its data — and tell that apart from a copy of a deleted workload.
   */
  generation: z.string().max(64).optional(),
});
export type ContainerRecord = z.infer<typeof ContainerRecord>;

export class RecordStore {
  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  bundleDir(id: string): string {
    return join(this.dir, id);
  }

  async save(record: ContainerRecord): Promise<void> {
    const dir = this.bundleDir(record.spec.id);
    await mkdir(dir, { recursive: true });
    const file = join(dir, 'record.json');
    await writeFile(`${file}.tmp`, JSON.stringify(record, null, 2));
    await rename(`${file}.tmp`, file);
  }

  async load(id: string): Promise<ContainerRecord | null> {
    try {
      return ContainerRecord.parse(JSON.parse(await readFile(join(this.bundleDir(id), 'record.json'), 'utf8')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async loadAll(): Promise<ContainerRecord[]> {
    let ids: string[] = [];
    try {
      ids = await readdir(this.dir);
    } catch {
      return [];
    }
    const records: ContainerRecord[] = [];
    for (const id of ids) {
      try {
        const record = await this.load(id);
        if (record) records.push(record);
      } catch (err) {
        this.log.error({ id, err }, 'unreadable container record; left alone');
      }
    }
    return records;
  }

  async remove(id: string): Promise<void> {
    await rm(this.bundleDir(id), { recursive: true, force: true });
  }
}
