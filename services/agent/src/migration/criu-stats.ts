import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fieldsOf, imageEntries } from './criu-image.ts';

/**
 * CRIU's own timings of a dump or a restore, from the `stats-dump` / `stats-restore` image it
 * writes into its work directory (images/stats.proto: stats_entry { dump = 1; restore = 2 }, times
 * in microseconds). What CRIU itself spent, next to what Ferry's steps around it took: the floor
 * a migration's freeze cannot go below with this CRIU.
 */
export interface CriuDumpStats {
  /** freezing the tasks (the cgroup freezer) */
  freezingMs: number;
  /** the tasks frozen, as CRIU counts it for the dump */
  frozenMs: number;
  memdumpMs: number;
  memwriteMs: number;
}

export interface CriuRestoreStats {
  forkingMs: number;
  /** the whole restore, as CRIU counts it */
  restoreMs: number;
}

const DUMP = { freezing: 1, frozen: 2, memdump: 3, memwrite: 4 } as const;
const RESTORE = { forking: 3, restore: 4 } as const;

function section(buf: Buffer, which: 1 | 2): Map<number, number> | null {
  for (const entry of imageEntries(buf)) {
    const part = fieldsOf(buf, entry.start, entry.end).find((f) => f.number === which && f.payload);
    if (!part?.payload) continue;
    const values = new Map<number, number>();
    for (const f of fieldsOf(buf, part.payload.start, part.payload.end)) if (f.varint !== undefined) values.set(f.number, Number(f.varint));
    return values;
  }
  return null;
}

const ms = (us: number | undefined) => Math.round((us ?? 0) / 100) / 10;

export function parseDumpStats(buf: Buffer): CriuDumpStats | null {
  const v = section(buf, 1);
  return v && { freezingMs: ms(v.get(DUMP.freezing)), frozenMs: ms(v.get(DUMP.frozen)), memdumpMs: ms(v.get(DUMP.memdump)), memwriteMs: ms(v.get(DUMP.memwrite)) };
}

export function parseRestoreStats(buf: Buffer): CriuRestoreStats | null {
  const v = section(buf, 2);
  return v && { forkingMs: ms(v.get(RESTORE.forking)), restoreMs: ms(v.get(RESTORE.restore)) };
}

/** The stats CRIU left in `dir`, or null (not written, or unreadable: they only inform). */
export async function readCriuStats<T>(dir: string, kind: 'dump' | 'restore', parse: (buf: Buffer) => T | null): Promise<T | null> {
  try {
    return parse(await readFile(join(dir, `stats-${kind}`)));
  } catch {
    return null;
  }
}
