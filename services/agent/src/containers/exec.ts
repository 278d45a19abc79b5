import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { EXEC_LIMITS, type ExecResult } from '@ferry/protocol';
import { CommandError } from './errors.ts';
import type { ContainerRecord } from './records.ts';
import type { Runc } from './runc.ts';

/** What exec and console need of the container manager. */
export interface OperableContainers {
  record(id: string): ContainerRecord | undefined;
  readonly runc: Runc;
}

/**
 * The copy a command may run in: this host's, running, and the generation the API knows (a copy
 * the cluster has superseded, or one being migrated, refuses).
 */
export function requireOperable(containers: OperableContainers, id: string, epoch: number): ContainerRecord {
  const record = containers.record(id);
  if (!record) throw new CommandError('NOT_FOUND', `no container ${id} on this host`);
  if (record.epoch !== epoch) throw new CommandError('CONFLICT', `the copy of ${id} here is epoch ${record.epoch}, not ${epoch}: not the workload's current copy`);
  if (record.state !== 'running') throw new CommandError('CONFLICT', `${id} is ${record.state} here, not running`);
  return record;
}

/** The first `limit` bytes of a stream, and whether more came (the rest is read and dropped, so the writer never blocks). */
export class CappedBuffer {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  truncated = false;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    const room = this.limit - this.kept;
    if (chunk.byteLength > room) this.truncated = true;
    if (room <= 0) return;
    const part = chunk.byteLength > room ? chunk.subarray(0, room) : chunk;
    this.chunks.push(part);
    this.kept += part.byteLength;
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** A file for runc's --pid-file: the host pid of the process runc starts in the container. */
export const pidFileFor = (dir: string, kind: string) => join(dir, `${kind}-${randomBytes(8).toString('hex')}.pid`);

export async function readPidFile(file: string): Promise<number | null> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 1 ? pid : null;
}

export const signalQuietly = (pid: number | null, signal: NodeJS.Signals) => {
  if (pid === null) return;
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
};

export interface ExecOptions {
  argv: string[];
  stdin?: string | undefined;
  timeoutMs: number;
  /** where runc's pid file goes (removed after) */
  runDir: string;
  hostId: string;
  /** aborted: the command is killed (SIGKILL), its reason the abort's */
  signal?: AbortSignal;
}

/**
 * One command in a running container: `runc exec <id> argv…` as an argument array (no shell on
 * the host; one in the container only if argv names it). Its stdin is the request's text (then
 * closed), its stdout and stderr are kept up to EXEC_LIMITS.outputBytes each. At the timeout the
 * process runc started in the container is killed (SIGKILL, by the pid runc wrote), then runc.
 */
export async function runExec(runc: Runc, id: string, o: ExecOptions): Promise<ExecResult> {
  const pidFile = pidFileFor(o.runDir, 'exec');
  const [binary, args] = runc.argv(['exec', '--pid-file', pidFile, id, ...o.argv]);
  const started = Date.now();
  const stdout = new CappedBuffer(EXEC_LIMITS.outputBytes);
  const stderr = new CappedBuffer(EXEC_LIMITS.outputBytes);
  const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  // a command that does not read its input closes the pipe first: not an error
  child.stdin.on('error', () => undefined);
  child.stdin.end(o.stdin ?? '');
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void readPidFile(pidFile).then((pid) => {
      signalQuietly(pid, 'SIGKILL');
      // runc ends when its process does; if it hangs anyway, it goes too
      setTimeout(() => child.kill('SIGKILL'), 2_000).unref();
    });
  }, o.timeoutMs);
  let killedBecause: string | null = null;
  const onAbort = () => {
    killedBecause = String(o.signal?.reason ?? 'aborted');
    void readPidFile(pidFile).then((pid) => signalQuietly(pid, 'SIGKILL'));
  };
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, s) => resolve([c, s]));
    });
    // runc answers a process killed by a signal with 128+n (as a shell does); the timeout's kill is named as such
    return {
      exitCode: timedOut || killedBecause ? null : code,
      signal: timedOut || killedBecause ? 'SIGKILL' : signal,
      timedOut,
      killedBecause,
      stdout: stdout.text(),
      stderr: stderr.text(),
      truncated: { stdout: stdout.truncated, stderr: stderr.truncated },
      ms: Date.now() - started,
      hostId: o.hostId,
    };
  } catch (err) {
    throw new CommandError('RUNTIME_ERROR', `runc exec could not start: ${(err as Error).message}`);
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', onAbort);
    await rm(pidFile, { force: true });
  }
}
