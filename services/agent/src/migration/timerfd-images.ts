import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fieldsOf, imageEntries } from './criu-image.ts';

/**
 * Re-arms, in a CRIU checkpoint, the periodic timerfds that CRIU would restore disarmed.
 *
 * Why: CRIU dumps a timerfd from /proc/<pid>/fdinfo, whose `it_value` is the time left before the
 * next expiration, clamped at 0. A periodic timer that expired while the workload was frozen is
 * only pushed forward when the workload reads it, so a frozen workload's timer shows
 * `it_value: (0, 0)` with a non-zero interval and `ticks` ≥ 1. CRIU restores exactly that, and a
 * timerfd set with a zero `it_value` is disarmed whatever its interval: the workload's event loop
 * never wakes again (CRIU issue #3162; the open fix proposal is CRIU PR #2030). Under runc the
 * cgroup freezer holds the workload for the whole dump, so nearly every live migration hit it.
 *
 * The fix: such an entry gets `it_value` = 1 ns, so the restored timer fires at once (it was
 * overdue) and then keeps its period; the ticks CRIU restores are kept. A timer the workload
 * disarmed itself has `ticks` 0 (timerfd_settime resets them) and is left alone, as is a one-shot
 * timer (interval 0), which an expiration disarms for real.
 */

const FILE_ENTRY_TIMERFD = 12; // file_entry.tfd
const TIMERFD = { ticks: 5, vsec: 7, vnsec: 8, isec: 9, insec: 10 } as const;

/** Rewrites one timerfd_entry in place if it is an expired periodic timer; true when it did. */
function rearmEntry(buf: Buffer, start: number, end: number): boolean {
  const fields = fieldsOf(buf, start, end);
  const value = (n: number) => fields.find((f) => f.number === n && f.wireType === 0)?.varint ?? 0n;
  const expired = value(TIMERFD.vsec) === 0n && value(TIMERFD.vnsec) === 0n;
  const periodic = value(TIMERFD.isec) !== 0n || value(TIMERFD.insec) !== 0n;
  if (!expired || !periodic || value(TIMERFD.ticks) === 0n) return false;
  const vnsec = fields.find((f) => f.number === TIMERFD.vnsec && f.wireType === 0);
  // proto2 writes required fields even when 0: a one-byte varint 0 that becomes a one-byte 1, so
  // no length around it changes.
  if (!vnsec || vnsec.end - vnsec.valueAt !== 1) throw new Error('timerfd entry without a one-byte vnsec field');
  buf[vnsec.valueAt] = 1;
  return true;
}

/**
 * Patches the timerfd entries of a files.img image held in buf (in place). Returns how many
 * timers it re-armed. Throws on an image it cannot read, so a checkpoint is never half-understood.
 */
export function rearmExpiredTimerfds(buf: Buffer): number {
  let rearmed = 0;
  for (const entry of imageEntries(buf)) {
    for (const field of fieldsOf(buf, entry.start, entry.end)) {
      if (field.number === FILE_ENTRY_TIMERFD && field.payload && rearmEntry(buf, field.payload.start, field.payload.end)) rearmed++;
    }
  }
  return rearmed;
}

/**
 * Applies rearmExpiredTimerfds to a checkpoint directory's files.img (atomically replaced).
 * Returns the number of timers re-armed; 0 when the checkpoint has no files image.
 */
export async function rearmCheckpointTimerfds(imagesDir: string): Promise<number> {
  const path = join(imagesDir, 'files.img');
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  const rearmed = rearmExpiredTimerfds(buf);
  if (rearmed > 0) {
    await writeFile(`${path}.rearm`, buf);
    await rename(`${path}.rearm`, path);
  }
  return rearmed;
}
