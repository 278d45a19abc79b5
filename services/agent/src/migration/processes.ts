import { setTimeout as sleep } from 'node:timers/promises';
import { isRunning, isSameProcessAlive, processStartTime } from '@ferry/runtime';
import type { ProcessRef } from './state.ts';

/** A process this agent started, by pid and start time (a reused pid is never mistaken for it). */
export const ref = (pid: number | undefined): ProcessRef | null => {
  if (!pid) return null;
  return { pid, startTime: processStartTime(pid) ?? '' };
};

/**
 * Still that process, and not a zombie. CRIU's daemons (`--daemon`: the lazy-pages daemon, the page
 * server) are orphans once started, so init reaps them — and an init may reap late: this machine's
 * does so every ~2 s, and a finish that took a zombie for a living daemon waited that long for the
 * lazy-pages daemon that had exited after the last page (0.85–1.55 s of every post-copy's cleanup).
 */
export const isAlive = (p: ProcessRef | null): boolean => p !== null && isSameProcessAlive(p.pid, p.startTime) && isRunning(p.pid);

/** Stops a process this agent started for a migration, if it is still that process (SIGKILL after 5 s; looked at every 10 ms). */
export async function stopProcess(p: ProcessRef | null, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || !isAlive(p)) return;
  try {
    process.kill(p.pid, signal);
  } catch {
    return;
  }
  for (let waited = 0; waited < 5_000 && isAlive(p); waited += 10) await sleep(10);
  if (isAlive(p)) process.kill(p.pid, 'SIGKILL');
}
