import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdir, readFile, readlink, rm } from 'node:fs/promises';
import { execa } from 'execa';
import type { Logger } from '@ferry/runtime';
import { CommandError } from './errors.ts';
import { pidFileFor, readPidFile, signalQuietly } from './exec.ts';
import type { Runc } from './runc.ts';

/**
 * Interactive shells in containers, each with a terminal.
 *
 * Node has no pty, so the host's `script` (util-linux) makes one: `script -qfec CMD /dev/null`
 * runs CMD on a new pseudo-terminal and relays it to its own stdin and stdout, which are pipes to
 * the agent. CMD is `runc exec -t`, which needs a terminal of its own to relay (it puts that one
 * in raw mode and makes the container's terminal, inside the container, for the shell).
 *
 * `script -c` takes a shell line, so the line is a constant: it reads the argument list from the
 * environment (FERRY_ARGV, one argument a line — none may contain a newline) and runs it with
 * `exec "${argv[@]}"`; nothing the request carries is ever parsed as shell code. The terminal's
 * size is set on script's terminal with `stty` first, and runc copies it to the container's.
 *
 * Ending a session: SIGHUP to the shell (by the pid runc wrote), which ends an interactive shell
 * and its jobs; whatever is left after a grace period gets SIGKILL, then script and runc.
 */
const SCRIPT_LINE = 'stty rows "$FERRY_ROWS" cols "$FERRY_COLS" 2>/dev/null; mapfile -t argv <<<"$FERRY_ARGV"; exec "${argv[@]}"';
/** In the container: bash if there is one, else sh; a login shell (the profile sets PS1 and PATH). */
const CONTAINER_SHELL = 'if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l';
const GRACE_MS = 1_500;

export interface ConsoleSize {
  rows: number;
  cols: number;
}

export interface ConsoleHandlers {
  output(data: Uint8Array): void;
  /** once, when the shell is gone: its exit code (null when it was ended from outside) and why */
  ended(exitCode: number | null, reason: string): void;
}

export interface OpenConsole {
  sessionId: string;
  workloadId: string;
  size: ConsoleSize;
  term: string;
}

export class ConsoleSession {
  private endReason: string | null = null;
  private readonly exited: Promise<number | null>;

  constructor(
    readonly sessionId: string,
    readonly workloadId: string,
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly pidFile: string,
    handlers: ConsoleHandlers,
    private readonly log: Logger,
  ) {
    child.stdout.on('data', (chunk: Buffer) => handlers.output(chunk));
    child.stderr.on('data', (chunk: Buffer) => handlers.output(chunk));
    child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      child.once('error', (err) => {
        this.endReason ??= `the terminal helper could not run: ${err.message}`;
        resolve(null);
      });
      child.once('close', (code) => resolve(code));
    });
    void this.exited.then(async (code) => {
      // the shell's own exit code when it exited by itself; ended from outside: null
      handlers.ended(this.endReason === null ? code : null, this.endReason ?? 'the shell exited');
      // (no kill by the pid file here: the shell is gone and its pid may be another's by now)
      await rm(this.pidFile, { force: true });
    });
  }

  write(data: Uint8Array): void {
    if (!this.child.stdin.destroyed) this.child.stdin.write(data);
  }

  /**
   * New size: set on script's terminal (the one runc reads; its foreground process group, runc,
   * gets SIGWINCH and copies the size into the container's terminal).
   */
  async resize(size: ConsoleSize): Promise<void> {
    const runcPid = await this.runcPid();
    if (runcPid === null) return;
    const tty = await readlink(`/proc/${runcPid}/fd/0`).catch(() => null);
    if (!tty?.startsWith('/dev/pts/')) return;
    await execa('stty', ['-F', tty, 'rows', String(size.rows), 'cols', String(size.cols)], { reject: false, timeout: 5_000 });
  }

  /** runc, script's one child */
  private async runcPid(): Promise<number | null> {
    const pid = this.child.pid;
    if (pid === undefined) return null;
    const { stdout } = await execa('pgrep', ['-P', String(pid)], { reject: false });
    const first = Number.parseInt(stdout.split('\n')[0] ?? '', 10);
    return Number.isInteger(first) ? first : null;
  }

  /**
   * Ends the session from outside (client gone, migration, agent stopping), as a terminal hangup
   * would, but for every process of the shell's session (background jobs too, which a busybox
   * shell does not pass the hangup on to): SIGHUP, and SIGKILL for those still there after the
   * grace period (nohup'd ones included). A process that left the session (setsid) stays.
   * Resolves when the shell and its session are gone.
   */
  async end(reason: string): Promise<void> {
    this.endReason ??= reason;
    const shell = await readPidFile(this.pidFile);
    const members = async () => (shell === null ? [] : await sessionMembers(shell));
    for (const pid of await members()) signalQuietly(pid, 'SIGHUP');
    const timer = setTimeout(() => {
      this.log.info({ sessionId: this.sessionId.slice(0, 6) }, 'the shell outlived SIGHUP: killed');
      signalQuietly(shell, 'SIGKILL');
      this.child.kill('SIGKILL');
    }, GRACE_MS);
    await this.exited;
    clearTimeout(timer);
    const left = await members();
    if (left.length > 0) await sleep(Math.min(GRACE_MS, 500));
    for (const pid of await members()) signalQuietly(pid, 'SIGKILL');
  }

  get done(): Promise<unknown> {
    return this.exited;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The processes (host pids) whose session is `sid`'s: a shell and the jobs it started. */
export async function sessionMembers(sid: number): Promise<number[]> {
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((name) => /^\d+$/.test(name));
  const found: number[] = [];
  await Promise.all(
    pids.map(async (name) => {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
      if (sessionOfStat(stat) === sid) found.push(Number(name));
    }),
  );
  return found;
}

/** The session id in a /proc/<pid>/stat line (the 6th field; the name in parentheses may hold spaces and parentheses). */
export function sessionOfStat(stat: string): number | null {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const session = Number(fields[3]);
  return stat.includes(')') && Number.isInteger(session) ? session : null;
}

/** Starts the shell of a session; `script` and runc as argument arrays (see SCRIPT_LINE). */
export function startConsole(runc: Runc, open: OpenConsole, runDir: string, handlers: ConsoleHandlers, log: Logger): ConsoleSession {
  const pidFile = pidFileFor(runDir, 'console');
  const [binary, args] = runc.argv(['exec', '-t', '--pid-file', pidFile, '--env', `TERM=${open.term}`, open.workloadId, '/bin/sh', '-c', CONTAINER_SHELL]);
  const argv = [binary, ...args];
  if (argv.some((a) => a.includes('\n'))) throw new CommandError('BAD_REQUEST', 'an argument of the console command contains a newline');
  const child = spawn('script', ['-qfec', SCRIPT_LINE, '/dev/null'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      // script runs SCRIPT_LINE with $SHELL -c: bash, for mapfile and arrays
      SHELL: '/bin/bash',
      FERRY_ARGV: argv.join('\n'),
      FERRY_ROWS: String(open.size.rows),
      FERRY_COLS: String(open.size.cols),
    },
  });
  return new ConsoleSession(open.sessionId, open.workloadId, child, pidFile, handlers, log);
}
