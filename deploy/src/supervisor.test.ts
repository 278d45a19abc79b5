import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '@ferry/runtime';
import { Supervisor } from './supervisor.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function until(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(20);
  }
}

describe('the supervisor’s restart policy', () => {
  const supervisor = () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-supervisor-'));
    dirs.push(dir);
    return new Supervisor(join(dir, 'run.json'), join(dir, 'logs'), createLogger('test'));
  };

  it('starts a process again with the same command when it dies, and not once it is stopped', async () => {
    const s = supervisor();
    const managed = s.spawn('sleeper', 'sleep', ['60'], { restart: { policy: 'on-failure', minBackoffMs: 50 } });
    const first = managed.pid;
    process.kill(first, 'SIGKILL');
    await until('restarted', () => managed.restarts === 1 && !managed.exited);
    expect(managed.pid).not.toBe(first);
    await s.stop(managed, 1_000);
    await sleep(200);
    expect(managed.restarts).toBe(1);
    expect(managed.exited).toBe(true);
  });

  it('backs off while it keeps failing', async () => {
    const s = supervisor();
    const managed = s.spawn('failing', 'false', [], { restart: { policy: 'on-failure', minBackoffMs: 100, maxBackoffMs: 400 } });
    await sleep(1_000);
    // 100 + 200 + 400 + 400 ms of back-off: at most 4 restarts in a second, not hundreds
    expect(managed.restarts).toBeGreaterThanOrEqual(2);
    expect(managed.restarts).toBeLessThanOrEqual(4);
    await s.stopAll();
  });

  it('leaves a process without a policy dead', async () => {
    const s = supervisor();
    const managed = s.spawn('once', 'false', []);
    await managed.done;
    await sleep(300);
    expect(managed.restarts).toBe(0);
    await s.stopAll();
  });
});
