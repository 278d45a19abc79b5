import { statfs } from 'node:fs/promises';
import type { StoragePoolReport } from '@ferry/protocol';
import type { PoolConfig } from '../config.ts';

export type PoolProbe = { ok: true; pool: StoragePoolReport } | { ok: false; id: string; error: string };

/** Free and total bytes of a pool's filesystem (statfs); a missing or unreadable path is reported as such. */
export async function probePool(pool: PoolConfig): Promise<PoolProbe> {
  try {
    const fs = await statfs(pool.path);
    return {
      ok: true,
      pool: {
        id: pool.id,
        path: pool.path,
        shared: pool.shared,
        totalBytes: fs.blocks * fs.bsize,
        freeBytes: fs.bavail * fs.bsize,
      },
    };
  } catch (err) {
    return { ok: false, id: pool.id, error: (err as Error).message };
  }
}
