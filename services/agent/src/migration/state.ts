import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { MigrationStrategy, WorkloadSpec } from '@ferry/protocol';

const ProcessRef = z.object({ pid: z.number().int().positive(), startTime: z.string() });
export type ProcessRef = z.infer<typeof ProcessRef>;

/** What an agent keeps on disk about its side of a migration, to finish or undo it after a restart. */
export const MigrationSide = z.object({
  migrationId: z.string(),
  role: z.enum(['source', 'destination']),
  workloadId: z.string(),
  strategy: MigrationStrategy,
  /** <pool>/containers/<id>: root filesystem and this migration's checkpoint images */
  containerDir: z.string(),
  imagesDir: z.string(),
  sharedRootfs: z.boolean(),
  // destination
  spec: WorkloadSpec.optional(),
  epoch: z.number().int().positive().optional(),
  netns: z.string().nullable(),
  sourceAddress: z.string().nullable(),
  rsyncd: ProcessRef.nullable(),
  pageServer: ProcessRef.nullable(),
  lazyDaemon: ProcessRef.nullable(),
  restored: z.boolean(),
  /**
   * wall-clock ms after which the agent stops this side's daemons on its own (older agents wrote
   * none: a sweep gives such a side one from when it first sees it)
   */
  deadlineAt: z.number().int().nullable().default(null),
  // source
  dumped: z.boolean(),
  checkpoint: ProcessRef.nullable(),
  frozenAt: z.number().int().nullable(),
});
export type MigrationSide = z.infer<typeof MigrationSide>;

/** A side as it starts: nothing running for it yet, nothing dumped or restored. */
export function newSide(fields: Pick<MigrationSide, 'migrationId' | 'role' | 'workloadId' | 'strategy' | 'containerDir' | 'sharedRootfs' | 'netns'> & Partial<MigrationSide>): MigrationSide {
  return {
    imagesDir: join(fields.containerDir, `ckpt-${fields.migrationId}`),
    sourceAddress: null,
    rsyncd: null,
    pageServer: null,
    lazyDaemon: null,
    restored: false,
    deadlineAt: null,
    dumped: false,
    checkpoint: null,
    frozenAt: null,
    ...fields,
  };
}

export class MigrationSides {
  constructor(private readonly dir: string) {}

  workDir(migrationId: string): string {
    return join(this.dir, migrationId);
  }

  async save(side: MigrationSide): Promise<void> {
    const dir = this.workDir(side.migrationId);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'side.json.tmp'), JSON.stringify(side, null, 2));
    await rename(join(dir, 'side.json.tmp'), join(dir, 'side.json'));
  }

  async load(migrationId: string): Promise<MigrationSide | null> {
    try {
      return MigrationSide.parse(JSON.parse(await readFile(join(this.workDir(migrationId), 'side.json'), 'utf8')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async all(): Promise<MigrationSide[]> {
    const ids = await readdir(this.dir).catch(() => [] as string[]);
    const sides = await Promise.all(ids.map((id) => this.load(id).catch(() => null)));
    return sides.filter((s): s is MigrationSide => s !== null);
  }

  async remove(migrationId: string): Promise<void> {
    await rm(this.workDir(migrationId), { recursive: true, force: true });
  }
}
