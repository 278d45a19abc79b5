import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

/** ms on CLOCK_MONOTONIC: one clock for every process of this boot (performance.now() is per process). */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

export const bootId = async (): Promise<string> => (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();

/**
 * What the agent tells its fence guard, rewritten whenever the lease changes: until when the
 * lease holds (monotonic ms of this boot), what to do then, and where the containers are. Which
 * containers are HA-protected the guard reads from the agent's own container records when it
 * fences, so a container started a moment before the agent died is not missed.
 */
export const GuardState = z.object({
  bootId: z.string().min(1),
  validUntilMs: z.number(),
  action: z.enum(['stop', 'freeze', 'none']),
  containersDir: z.string().startsWith('/'),
  cgroupParent: z.string().startsWith('/'),
  /** the agent's fenceGuardGraceMs: a guard it did not start itself (the systemd unit) takes it from here */
  graceMs: z.number().int().min(0).max(60_000).optional(),
  /**
   * only HA containers on these pools are fenced (the shared ones: another host could restart
   * them); absent: every HA container
   */
  fencePools: z.array(z.string()).max(64).optional(),
});
export type GuardState = z.infer<typeof GuardState>;

/** What the guard did (one file per event, so the agent can take them one by one without races). */
export const GuardEvent = z.object({
  id: z.string(),
  at: z.number().int().nonnegative(),
  action: z.enum(['stop', 'freeze']),
  containers: z.array(z.string()),
  lateMs: z.number().nonnegative(),
});
export type GuardEvent = z.infer<typeof GuardEvent>;

export const guardPaths = (dataDir: string) => ({
  state: join(dataDir, 'lease.json'),
  events: join(dataDir, 'guard-events'),
  pidFile: join(dataDir, 'fence-guard.pid'),
  log: join(dataDir, 'fence-guard.log'),
});

export async function writeGuardState(dataDir: string, state: GuardState): Promise<void> {
  const { state: file } = guardPaths(dataDir);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(state));
  await rename(tmp, file);
}

export async function readGuardState(dataDir: string): Promise<GuardState | null> {
  try {
    return GuardState.parse(JSON.parse(await readFile(guardPaths(dataDir).state, 'utf8')));
  } catch {
    return null;
  }
}

export async function writeGuardEvent(dataDir: string, event: Omit<GuardEvent, 'id'>): Promise<GuardEvent> {
  const dir = guardPaths(dataDir).events;
  await mkdir(dir, { recursive: true });
  const full = { id: randomBytes(6).toString('hex'), ...event };
  await writeFile(join(dir, `${full.id}.json.tmp`), JSON.stringify(full));
  await rename(join(dir, `${full.id}.json.tmp`), join(dir, `${full.id}.json`));
  return full;
}

/** Takes (reads and removes) every event the guard wrote; unreadable files are dropped. */
export async function takeGuardEvents(dataDir: string): Promise<GuardEvent[]> {
  const dir = guardPaths(dataDir).events;
  const names = await readdir(dir).catch(() => [] as string[]);
  const events: GuardEvent[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    const parsed = GuardEvent.safeParse(
      await readFile(join(dir, name), 'utf8')
        .then((t) => JSON.parse(t) as unknown)
        .catch(() => null),
    );
    if (parsed.success) events.push(parsed.data);
    await rm(join(dir, name), { force: true });
  }
  return events;
}

/**
 * The guard's one decision: fence now? Only after the lease lapsed by more than `graceMs` (the
 * agent, when alive, fences first and reports it itself), and once per lease value.
 */
export function guardShouldFence(state: GuardState | null, nowMs: number, graceMs: number, fencedFor: number | null): boolean {
  if (!state) return false;
  if (fencedFor !== null && fencedFor === state.validUntilMs) return false;
  return nowMs > state.validUntilMs + graceMs;
}
