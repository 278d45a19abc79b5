import { statfs } from 'node:fs/promises';
import { execa } from 'execa';

/** statfs f_type of btrfs (linux/magic.h) */
export const BTRFS_SUPER_MAGIC = 0x9123683e;

const TIMEOUT_MS = 60_000;

async function btrfs(args: string[], timeout = TIMEOUT_MS): Promise<string> {
  const run = await execa('btrfs', args, { reject: false, timeout });
  if (run.exitCode !== 0) throw new Error(`btrfs ${args.join(' ')}: ${(run.stderr || run.stdout).trim().split('\n').pop()}`);
  return run.stdout;
}

/** Whether `path` is on btrfs with quota groups enabled (what a copy-on-write pool needs). */
export async function isQuotaBtrfs(path: string): Promise<boolean> {
  const fs = await statfs(path).catch(() => null);
  if (!fs || fs.type !== BTRFS_SUPER_MAGIC) return false;
  const run = await execa('btrfs', ['qgroup', 'show', path], { reject: false, timeout: TIMEOUT_MS });
  return run.exitCode === 0;
}

export async function createSubvolume(path: string): Promise<void> {
  await btrfs(['subvolume', 'create', path]);
}

/** A writable snapshot of `source` (a subvolume) at `path`: copy-on-write, milliseconds whatever its size. */
export async function snapshot(source: string, path: string): Promise<void> {
  await btrfs(['subvolume', 'snapshot', source, path]);
}

export async function setReadOnly(path: string): Promise<void> {
  await btrfs(['property', 'set', '-ts', path, 'ro', 'true']);
}

/** The subvolume id of the subvolume `path` is the root of, or null when it is none. */
export async function subvolumeId(path: string): Promise<number | null> {
  const run = await execa('btrfs', ['subvolume', 'show', path], { reject: false, timeout: TIMEOUT_MS });
  if (run.exitCode !== 0) return null;
  const id = /^\s*Subvolume ID:\s*(\d+)/m.exec(run.stdout)?.[1];
  return id ? Number(id) : null;
}

/**
 * Deletes the subvolume at `path` (gone from the tree at once). The kernel's cleaner frees its
 * extents afterwards, in the background, and removes its quota group when done (until then the
 * group shows as `<stale>`): not waited for — with quota groups on, it took 8–16 s per Debian
 * root while 30 were deleted here. `btrfs subvolume sync` waits for it.
 */
export async function deleteSubvolume(path: string): Promise<void> {
  if ((await subvolumeId(path)) === null) return;
  await btrfs(['subvolume', 'delete', path]);
}

/**
 * Limits the bytes charged to the subvolume at `path`: a write past it fails with EDQUOT. What is
 * charged depends on the pool's quota mode (deploy/pool-image): with simple quotas (what the pool
 * image enables), the extents the subvolume wrote itself — a snapshot's extents shared with its
 * template stay charged to the template; with full quota groups, everything it references.
 * `null` removes the limit.
 */
export async function setReferencedLimit(path: string, bytes: number | null): Promise<void> {
  await btrfs(['qgroup', 'limit', bytes === null ? 'none' : String(bytes), path]);
}

export interface QgroupRow {
  id: number;
  referencedBytes: number;
  exclusiveBytes: number;
  /** null: no limit */
  maxReferencedBytes: number | null;
  /** relative to the filesystem's top level; `<stale>` for a deleted subvolume's group */
  path: string;
}

/**
 * Parses `btrfs qgroup show -re --raw PATH` (btrfs-progs 6.x): a header, a dashes line, then
 * `0/<id> <referenced> <exclusive> <max referenced> <max exclusive> <path>`.
 */
export function parseQgroupShow(output: string): QgroupRow[] {
  const rows: QgroupRow[] = [];
  for (const line of output.split('\n')) {
    const m = /^\s*0\/(\d+)\s+(\d+)\s+(\d+)\s+(\d+|none)\s+(?:\d+|none)\s+(.+?)\s*$/.exec(line);
    if (!m) continue;
    rows.push({
      id: Number(m[1]),
      referencedBytes: Number(m[2]),
      exclusiveBytes: Number(m[3]),
      maxReferencedBytes: m[4] === 'none' ? null : Number(m[4]),
      path: m[5]!,
    });
  }
  return rows;
}

/** Every level-0 quota group of the filesystem `path` is on: one ioctl walk, cheap (no tree walk as du). */
export async function qgroups(path: string): Promise<QgroupRow[]> {
  return parseQgroupShow(await btrfs(['qgroup', 'show', '-re', '--raw', path]));
}
