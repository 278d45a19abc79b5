import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import type { Logger } from '@ferry/runtime';
import { isRunning, isSameProcessAlive, processStartTime } from '@ferry/runtime';

const RunRecord = z.object({
  supervisor: z.object({ pid: z.number().int(), startTime: z.string() }),
  processes: z.array(z.object({ name: z.string(), pid: z.number().int(), startTime: z.string() })),
});
type RunRecord = z.infer<typeof RunRecord>;

export interface ManagedProcess {
  name: string;
  pid: number;
  startTime: string;
  logFile: string;
  child: ChildProcess;
  /** resolves when the process has exited */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exited: boolean;
  /** set when the supervisor itself stops it, so its exit is not reported as a failure */
  stopRequested: boolean;
  /** how often the restart policy started it again (pid, startTime, child and done are then the new run's) */
  restarts: number;
}

/**
 * `on-failure`: started again (same command, arguments and environment: same port, same
 * configuration) whenever it exits without the supervisor having asked, after a back-off that
 * doubles from `minBackoffMs` to `maxBackoffMs` and starts over once a run lasted `resetAfterMs`.
 */
export interface RestartPolicy {
  policy: 'on-failure';
  minBackoffMs?: number;
  maxBackoffMs?: number;
  resetAfterMs?: number;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  restart?: RestartPolicy;
}

/**
 * Starts child processes, records them (pid + start time) in a run file, and stops exactly those:
 * in reverse start order, SIGTERM then SIGKILL, waiting on each pid. Never matches by name.
 * Children get SIGTERM from the kernel if the supervisor dies; should one survive anyway (it
 * ignored the signal), the run file lets the next start stop it.
 */
export class Supervisor {
  private readonly processes: ManagedProcess[] = [];

  constructor(
    private readonly runFile: string,
    private readonly logDir: string,
    private readonly log: Logger,
  ) {
    mkdirSync(logDir, { recursive: true });
    mkdirSync(dirname(runFile), { recursive: true });
  }

  /** Refuses when another live supervisor owns the run file; stops what a dead one left behind. */
  async claim(): Promise<void> {
    let previous: RunRecord | null = null;
    try {
      previous = RunRecord.parse(JSON.parse(readFileSync(this.runFile, 'utf8')));
    } catch {
      previous = null;
    }
    if (previous) {
      const { pid, startTime } = previous.supervisor;
      if (pid !== process.pid && isSameProcessAlive(pid, startTime)) {
        throw new Error(`another Ferry cluster runs from this state directory (supervisor pid ${pid}); stop it first`);
      }
      const leftovers = previous.processes.filter((p) => isSameProcessAlive(p.pid, p.startTime));
      if (leftovers.length > 0) {
        this.log.warn({ leftovers: leftovers.map((p) => `${p.name}:${p.pid}`) }, 'stopping processes left by an earlier run');
        await Promise.all(leftovers.map((p) => stopPid(p.pid, p.startTime)));
      }
    }
    this.save();
  }

  private save(): void {
    const record: RunRecord = {
      supervisor: { pid: process.pid, startTime: processStartTime(process.pid) ?? '' },
      processes: this.processes.filter((p) => !p.exited).map(({ name, pid, startTime }) => ({ name, pid, startTime })),
    };
    const tmp = `${this.runFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(record, null, 2));
    renameSync(tmp, this.runFile);
  }

  spawn(name: string, command: string, args: string[], options: SpawnOptions = {}): ManagedProcess {
    const logFile = join(this.logDir, `${name}.log`);
    const managed = { name, logFile, exited: false, stopRequested: false, restarts: 0 } as ManagedProcess;
    this.launch(managed, command, args, options);
    this.processes.push(managed);
    this.save();
    this.log.debug({ name, pid: managed.pid, logFile }, 'started');
    return managed;
  }

  /** Starts (or starts again) one run of a managed process. */
  private launch(managed: ManagedProcess, command: string, args: string[], options: SpawnOptions): void {
    // The child writes its output straight to the log file (an inherited fd), not through a pipe
    // to this process: if the supervisor dies, a pipe would break and take the child with it.
    // That is why this uses node's spawn rather than execa, which pipes `{file}` outputs.
    const fd = openSync(managed.logFile, 'a');
    let child: ChildProcess;
    try {
      // setpriv asks the kernel to SIGTERM the child when this supervisor dies, even by SIGKILL,
      // then execs the command in place (same pid), so nothing outlives a killed `npm start`.
      child = spawn('setpriv', ['--pdeathsig', 'TERM', '--', command, ...args], {
        cwd: options.cwd,
        env: { ...process.env, ...options.env },
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${managed.name} (${command})`);
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', () => resolve({ code: null, signal: null }));
    });
    const startedAt = Date.now();
    Object.assign(managed, { pid, startTime: processStartTime(pid) ?? '', child, done, exited: false });
    void done.then((result) => {
      if (managed.child !== child) return; // an earlier run
      managed.exited = true;
      if (managed.stopRequested) return;
      const { name, logFile } = managed;
      this.log.error({ name, pid, exitCode: result.code, signal: result.signal, logFile }, 'process exited unexpectedly');
      const restart = options.restart;
      if (!restart) return;
      const min = restart.minBackoffMs ?? 200;
      const ranFor = Date.now() - startedAt;
      const failures = ranFor >= (restart.resetAfterMs ?? 30_000) ? 0 : (this.failures.get(managed) ?? 0);
      this.failures.set(managed, failures + 1);
      const backoffMs = Math.min(restart.maxBackoffMs ?? 10_000, min * 2 ** failures);
      this.log.warn({ name, backoffMs, restarts: managed.restarts + 1 }, 'restarting it (restart policy on-failure)');
      setTimeout(() => {
        if (managed.stopRequested || managed.child !== child) return;
        try {
          this.launch(managed, command, args, options);
          managed.restarts += 1;
          this.save();
          this.log.warn({ name, pid: managed.pid, restarts: managed.restarts }, 'restarted');
        } catch (err) {
          this.log.error({ name, err: (err as Error).message }, 'restart failed');
        }
      }, backoffMs).unref();
    });
  }

  /** consecutive quick failures per restartable process (the back-off's exponent) */
  private readonly failures = new WeakMap<ManagedProcess, number>();

  /**
   * Stops one process this supervisor started and waits until its pid is gone: SIGTERM, then
   * SIGKILL after the grace period (at once with a grace of 0, which is how tests crash a host).
   */
  async stop(managed: ManagedProcess, graceMs = 10_000): Promise<void> {
    managed.stopRequested = true;
    if (!managed.exited && graceMs > 0) {
      managed.child.kill('SIGTERM');
      const stopped = await Promise.race([managed.done.then(() => true), sleep(graceMs).then(() => false)]);
      if (!stopped) this.log.warn({ name: managed.name, pid: managed.pid }, 'did not stop within grace period; SIGKILL');
    }
    if (!managed.exited) {
      managed.child.kill('SIGKILL');
      await managed.done;
    }
    managed.exited = true;
    this.save();
  }

  async stopAll(): Promise<void> {
    for (const managed of [...this.processes].reverse()) await this.stop(managed);
    const survivors = this.processes.filter((p) => isRunning(p.pid) && isSameProcessAlive(p.pid, p.startTime));
    if (survivors.length > 0) throw new Error(`processes still running after stop: ${survivors.map((p) => p.pid).join(', ')}`);
    this.processes.length = 0;
    this.save();
  }

  list(): readonly ManagedProcess[] {
    return this.processes;
  }
}

/** Stops a process that is not our child (left by an earlier run), identified by pid + start time. */
async function stopPid(pid: number, startTime: string): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    if (!isSameProcessAlive(pid, startTime)) return;
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  };
  signal('SIGTERM');
  for (let waited = 0; waited < 10_000; waited += 100) {
    if (!isSameProcessAlive(pid, startTime) || !isRunning(pid)) return;
    await sleep(100);
  }
  signal('SIGKILL');
}
