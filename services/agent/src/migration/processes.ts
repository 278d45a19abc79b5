import { setTimeout as sleep } from 'node:timers/promises';
import { isSameProcessAlive, processStartTime } from '@ferry/runtime';
import type { ProcessRef } from './state.ts';

/** A process this agent started, by pid and start time (a reused pid is never mistaken for it). */
export const ref = (pid: number | undefined): ProcessRef | null => {
  if (!pid) return null;
  return { pid, startTime: processStartTime(pid) ?? '' };
};

export const isAlive = (p: ProcessRef | null): boolean => p !== null && isSameProcessAlive(p.pid, p.startTime);

/** Stops a process this agent started for a migration, if it is still that process (SIGKILL after 5 s). */
export async function stopProcess(p: ProcessRef | null, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!p || !isSameProcessAlive(p.pid, p.startTime)) return;
  try {
    process.kill(p.pid, signal);
  } catch {
    return;
  }
  for (let waited = 0; waited < 5_000 && isSameProcessAlive(p.pid, p.startTime); waited += 50) await sleep(50);
  if (isSameProcessAlive(p.pid, p.startTime)) process.kill(p.pid, 'SIGKILL');
}
