import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { isSameProcessAlive } from '@ferry/runtime';
import { isAlive, ref, stopProcess } from './processes.ts';

/**
 * A zombie nobody reaps soon: `sleep 0.05` started in the background by a shell that then
 * becomes `sleep 5` (exec), which never waits for it — as an orphaned CRIU daemon waits for a
 * slow init to reap it.
 */
async function zombie(): Promise<{ pid: number; parent: ReturnType<typeof spawn> }> {
  const parent = spawn('sh', ['-c', 'sleep 0.05 & exec sleep 5'], { stdio: 'ignore' });
  for (let i = 0; i < 200; i++) {
    const children = readFileSync(`/proc/${parent.pid}/task/${parent.pid}/children`, 'utf8').trim();
    if (children) return { pid: Number(children.split(/\s+/)[0]), parent };
    await sleep(5);
  }
  throw new Error('no child');
}

describe('isAlive and stopProcess (processes a migration started)', () => {
  it('take an exited process that waits to be reaped (a zombie) for gone', async () => {
    const { pid, parent } = await zombie();
    try {
      const p = ref(pid)!;
      expect(isAlive(p)).toBe(true);
      await sleep(300); // exited, not reaped: its parent sleeps on
      expect(isSameProcessAlive(p.pid, p.startTime)).toBe(true);
      expect(isAlive(p)).toBe(false);
      const started = performance.now();
      await stopProcess(p);
      expect(performance.now() - started).toBeLessThan(100);
    } finally {
      parent.kill('SIGKILL');
    }
  });

  it('stops a living process and waits until it is gone', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const p = ref(child.pid)!;
    expect(isAlive(p)).toBe(true);
    await stopProcess(p);
    expect(isAlive(p)).toBe(false);
  });
});
