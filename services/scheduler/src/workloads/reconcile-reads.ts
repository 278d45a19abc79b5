import type { ContainerStatus, WorkloadRecord } from '@ferry/protocol';
import { reviewCopy, type GenerationView } from './reconcile-decision.ts';

/**
 * Every host's records read fresh from Redis at least this often, whatever the copy says: a
 * safety net under the change-log copy (a copy wrong in a way it cannot notice is wrong for at
 * most this long). Every 10 s these reads still cost ~6 % of a core at 1,000 hosts with 20
 * containers each (profiled, bench/RESULTS.md "Scheduler CPU per capacity report").
 */
export const FRESH_READ_EVERY_MS = 30_000;

/**
 * When a reconciler pass reads its host's records fresh from Redis rather than from the process's
 * change-log copy (RecordCache): the host's first pass, every FRESH_READ_EVERY_MS, and after the
 * cluster generation changed (Redis lost its data: nothing read before vouches for anything). Pure:
 * the caller passes the clock and the generation.
 */
export class FreshReads {
  /** per host: when its records were last read fresh, and in which generation */
  private readonly last = new Map<string, { at: number; generation: string | null }>();

  constructor(private readonly everyMs = FRESH_READ_EVERY_MS) {}

  due(hostId: string, now: number, generation: string | null): boolean {
    const last = this.last.get(hostId);
    return !last || last.generation !== generation || now - last.at >= this.everyMs;
  }

  readFresh(hostId: string, now: number, generation: string | null): void {
    this.last.set(hostId, { at: now, generation });
  }
}

/**
 * Which of a host's copies need their record read fresh before anything is decided about them:
 * every copy the copy-read record does not find plainly in line (an action, a stray, an adoption,
 * a stamp). The copy only ever spares work: a copy it finds in line is left alone (as a fresh read
 * would, unless the copy is behind — see FreshReads), and nothing is done on its word alone.
 */
export function doubtfulCopies(hostId: string, containers: readonly ContainerStatus[], cached: ReadonlyArray<WorkloadRecord | null>, generation: GenerationView | null, now: number): number[] {
  const doubtful: number[] = [];
  containers.forEach((container, i) => {
    const { decision, stamp } = reviewCopy(hostId, container, cached[i] ?? null, generation, now);
    if (decision.kind !== 'in-line' || stamp) doubtful.push(i);
  });
  return doubtful;
}
