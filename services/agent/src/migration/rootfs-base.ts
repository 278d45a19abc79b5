import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOTFS_BASE_FILE, RootfsStore, type RootfsBase } from '../containers/rootfs.ts';
import { rsyncPull, type RsyncTarget } from './rsync.ts';

export interface BaseComparison {
  /** whether rsync's quick check (size and mtime) is safe against what the destination holds */
  same: boolean;
  source: RootfsBase | null;
  destination: RootfsBase | null;
}

/** Whether a destination's prepared root lets rsync trust its quick check (see sameRootfsBase). */
export function compareBases(source: RootfsBase | null, destination: RootfsBase | null): boolean {
  // an empty root (a plain directory pool, or no such template there): nothing to be fooled by
  if (destination === null) return true;
  return source !== null && source.template === destination.template && source.version === destination.version;
}

/**
 * Before the source's root filesystem is pushed: what the destination prepared it into (on a
 * copy-on-write pool, a snapshot of its own import of the template). Same template name and
 * content digest as the source's root was made from: rsync sends only the files that differ.
 * Otherwise a file of the same size and mtime may still differ: another version of the template
 * is refused by the presync; a root that does not say what it came from (made before
 * rootfs-base.json existed) is sent whole (`--ignore-times`: a full, flattened copy). `known`:
 * the destination's base as its prepare reported it; only when absent is it pulled from there.
 */
export async function sameRootfsBase(containerDir: string, target: RsyncTarget, workDir: string, known?: RootfsBase | null): Promise<BaseComparison> {
  const source = await RootfsStore.readBase(containerDir);
  // the destination's prepare said what it made the root from: no rsync connection to ask it again
  if (known !== undefined) return { same: compareBases(source, known), source, destination: known };
  const into = join(workDir, 'destination-base');
  await rm(into, { recursive: true, force: true });
  await mkdir(into, { recursive: true });
  // a transfer that fails here fails the presync, as the copy itself would
  await rsyncPull(target, 'ct', '', into, [ROOTFS_BASE_FILE], 30_000);
  const destination = await RootfsStore.readBase(into);
  await rm(into, { recursive: true, force: true });
  return { same: compareBases(source, destination), source, destination };
}
