import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import type { WorkloadSpec } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import type { PoolConfig } from '../config.ts';
import { createSubvolume, deleteSubvolume, isQuotaBtrfs, qgroups, setReadOnly, setReferencedLimit, snapshot, subvolumeId } from './btrfs.ts';
import type { Template } from './templates.ts';

/**
 * How a pool holds root filesystems. `cow`: btrfs with quota groups — each template is imported
 * once into the pool as a read-only subvolume, each container root is a writable snapshot of it
 * (milliseconds) with a quota-group limit (a write past it fails with EDQUOT). `copy`: any other
 * directory — a private `cp -a` of the template, disk measured with du and not enforced.
 */
export type PoolMode = 'cow' | 'copy';

/** Which template a copy-on-write root was snapshotted from (`<container dir>/rootfs-base.json`). */
export const RootfsBase = z.object({ template: z.string(), version: z.string() });
export type RootfsBase = z.infer<typeof RootfsBase>;

export const ROOTFS_BASE_FILE = 'rootfs-base.json';

/** A container's disk limit: its workload's disk size (on a simple-quota pool, what it wrote beyond its template). */
export const diskLimitBytes = (spec: Pick<WorkloadSpec, 'resources'>): number => spec.resources.diskMiB * 1024 * 1024;

export const containerDirOf = (pool: PoolConfig, id: string) => join(pool.path, 'containers', id);

/** Where a pool keeps its imported templates: `<pool>/templates/<name>@<version>`. */
export const baseDirOf = (pool: PoolConfig, template: Pick<Template, 'name' | 'version'>) => join(pool.path, 'templates', `${template.name}@${template.version}`);

/**
 * Root filesystems of containers in this host's pools: created, received (a migration's
 * destination), limited, measured and removed according to the pool's mode.
 */
export class RootfsStore {
  private readonly modes = new Map<string, Promise<PoolMode>>();
  /** template imports in progress, per base directory: concurrent creates wait for the same one */
  private readonly imports = new Map<string, Promise<string>>();

  constructor(private readonly log: Logger) {}

  /** The pool's mode, probed once (a pool's filesystem does not change under a running agent). */
  mode(pool: PoolConfig): Promise<PoolMode> {
    let mode = this.modes.get(pool.id);
    if (!mode) {
      mode = isQuotaBtrfs(pool.path).then((cow): PoolMode => {
        this.log.info(
          { pool: pool.id, path: pool.path, mode: cow ? 'cow' : 'copy' },
          cow ? 'pool is btrfs with quotas: copy-on-write roots, enforced disk limits' : 'pool is a plain directory: copied roots, disk not enforced',
        );
        return cow ? 'cow' : 'copy';
      });
      mode.catch(() => this.modes.delete(pool.id));
      this.modes.set(pool.id, mode);
    }
    return mode;
  }

  /**
   * A new root filesystem for container `id` from `template`, at `<pool>/containers/<id>/rootfs`,
   * limited to `limitBytes` on a cow pool. Built under a scratch name and renamed: a crash never
   * leaves a half root in place.
   */
  async create(pool: PoolConfig, template: Template, id: string, limitBytes: number): Promise<{ rootfs: string; mode: PoolMode }> {
    const dir = containerDirOf(pool, id);
    const rootfs = join(dir, 'rootfs');
    const scratch = `${rootfs}.partial`;
    const mode = await this.mode(pool);
    await this.removeRoot(pool, scratch);
    await this.removeRoot(pool, rootfs);
    await mkdir(dir, { recursive: true });
    if (mode === 'cow') {
      const base = await this.importTemplate(pool, template);
      await snapshot(base, scratch);
      await setReferencedLimit(scratch, limitBytes);
    } else {
      const copy = await execa('cp', ['-a', '--reflink=auto', template.rootfs, scratch], { reject: false, timeout: 600_000 });
      if (copy.exitCode !== 0) {
        await rm(scratch, { recursive: true, force: true });
        throw new Error(`copying template ${template.name}: ${copy.stderr.trim()}`);
      }
    }
    // which template the root was made from, whatever the mode: a migration's source compares it
    // with the destination's (see receive)
    await writeFile(join(dir, ROOTFS_BASE_FILE), JSON.stringify({ template: template.name, version: template.version } satisfies RootfsBase));
    await rename(scratch, rootfs);
    return { rootfs, mode };
  }

  /**
   * A migration's destination, before anything is copied: on a cow pool, the root the source's
   * copy will be rsynced into — a snapshot of this host's import of the same template (rsync then
   * sends only what differs from it, and the two share the template's extents again), or an
   * empty subvolume when this host has no such template (the copy is then complete: flattened) —
   * with the container's limit already set. `rootfs-base.json` says which, for the source to see.
   * On a copy pool nothing is needed (rsync makes the directories).
   */
  async receive(pool: PoolConfig, template: Template | undefined, id: string, limitBytes: number): Promise<RootfsBase | null> {
    if ((await this.mode(pool)) !== 'cow') return null;
    const dir = containerDirOf(pool, id);
    const rootfs = join(dir, 'rootfs');
    await this.removeRoot(pool, rootfs);
    await mkdir(dir, { recursive: true });
    let base: RootfsBase | null = null;
    if (template) {
      await snapshot(await this.importTemplate(pool, template), rootfs);
      base = { template: template.name, version: template.version };
    } else {
      await createSubvolume(rootfs);
      this.log.warn({ workload: id, pool: pool.id }, 'no such template here: the moved root filesystem will be a full copy (flattened)');
    }
    await setReferencedLimit(rootfs, limitBytes);
    const file = join(dir, ROOTFS_BASE_FILE);
    if (base) await writeFile(file, JSON.stringify(base));
    else await rm(file, { force: true });
    return base;
  }

  /** (Re)sets the limit of a container's root on a cow pool (no-op elsewhere). */
  async setLimit(pool: PoolConfig, rootfs: string, limitBytes: number): Promise<void> {
    if ((await this.mode(pool)) === 'cow') await setReferencedLimit(rootfs, limitBytes);
  }

  /**
   * Removes a container's directory: its root's subvolume first on a cow pool (the kernel drops
   * its quota group once its cleaner has freed the extents), then the rest.
   */
  async removeContainerDir(pool: PoolConfig | undefined, dir: string): Promise<void> {
    if (pool) {
      await this.removeRoot(pool, join(dir, 'rootfs.partial'));
      await this.removeRoot(pool, join(dir, 'rootfs'));
    }
    await rm(dir, { recursive: true, force: true });
  }

  /** Removes a root filesystem (a subvolume or a directory); a missing one is fine. */
  async removeRoot(pool: PoolConfig, path: string): Promise<void> {
    if (!(await exists(path))) return;
    if ((await this.mode(pool)) === 'cow' && (await subvolumeId(path)) !== null) {
      // a read-only snapshot cannot be deleted without clearing the flag first; ours never are
      await deleteSubvolume(path);
      return;
    }
    await rm(path, { recursive: true, force: true });
  }

  /**
   * Bytes charged to each container's root, by container id, for every cow pool: read from the
   * quota groups (one cheap call per pool, no tree walk). Containers on copy pools are absent.
   */
  async usage(pools: PoolConfig[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    for (const pool of pools) {
      if ((await this.mode(pool)) !== 'cow') continue;
      for (const row of await qgroups(pool.path)) {
        // paths are relative to the filesystem's top level: a pool may be a directory inside it
        const m = /(?:^|\/)containers\/([^/]+)\/rootfs$/.exec(row.path);
        if (m) found.set(m[1]!, row.referencedBytes);
      }
    }
    return found;
  }

  /** What `<container dir>/rootfs-base.json` says, or null (none: a copied or flattened root). */
  static async readBase(dir: string): Promise<RootfsBase | null> {
    try {
      return RootfsBase.parse(JSON.parse(await readFile(join(dir, ROOTFS_BASE_FILE), 'utf8')));
    } catch {
      return null;
    }
  }

  /**
   * The pool's read-only subvolume of `template` (name and content digest), imported on first
   * use: a full copy once per pool and template version (about a second for the Debian
   * template), then every container of it is a snapshot.
   */
  private importTemplate(pool: PoolConfig, template: Template): Promise<string> {
    const base = baseDirOf(pool, template);
    let pending = this.imports.get(base);
    if (!pending) {
      pending = (async () => {
        if ((await subvolumeId(base)) !== null) return base;
        const scratch = `${base}.partial-${randomBytes(3).toString('hex')}`;
        const started = performance.now();
        await mkdir(dirname(base), { recursive: true });
        await createSubvolume(scratch);
        try {
          const copy = await execa('cp', ['-a', '--reflink=auto', `${template.rootfs}/.`, `${scratch}/`], { reject: false, timeout: 600_000 });
          if (copy.exitCode !== 0) throw new Error(`importing template ${template.name}: ${copy.stderr.trim()}`);
          await setReadOnly(scratch);
          await rename(scratch, base).catch(async (err: unknown) => {
            // another host on a shared pool imported it meanwhile: theirs is as good
            if ((await subvolumeId(base)) === null) throw err;
            await execa('btrfs', ['property', 'set', '-ts', scratch, 'ro', 'false'], { reject: false });
            await deleteSubvolume(scratch);
          });
        } catch (err) {
          await execa('btrfs', ['property', 'set', '-ts', scratch, 'ro', 'false'], { reject: false });
          await deleteSubvolume(scratch).catch(() => undefined);
          throw err;
        }
        this.log.info({ pool: pool.id, template: `${template.name}@${template.version}`, ms: Math.round(performance.now() - started) }, 'template imported into the pool');
        return base;
      })();
      pending.catch(() => this.imports.delete(base));
      this.imports.set(base, pending);
    }
    return pending;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
