import type { Command } from 'commander';
import { EXEC_LIMITS, type ConsoleTicket, type ExecResult } from '@ferry/protocol';
import { ConsoleConnection } from '../console-client.ts';
import { EXIT, UsageError } from '../errors.ts';
import type { Session } from '../session.ts';

/** Ctrl-] (0x1d), as telnet and `virsh console`: leaves the console, ends the shell */
const DETACH = 0x1d;

async function readStdin(limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).byteLength;
    if (size > limit) throw new UsageError(`stdin is over ${limit} bytes, the most exec takes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const parseTimeout = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new UsageError(`--timeout must be a number of seconds, not ${value}`);
  return Math.round(seconds * 1000);
};

/** `ferry exec` and `ferry console`: a command, or an interactive shell, in a running workload (operator role). */
export function consoleCommands(program: Command, session: () => Session): void {
  program
    .command('exec <workload> <command...>')
    .description('run one command in a running workload and exit with its exit code (like vzctl exec); put -- before the command: ferry exec web-1 -- ls -l /')
    .option('-i, --stdin', `send this program's stdin to the command (at most ${EXEC_LIMITS.stdinBytes / 1024} KiB)`)
    .option('--timeout <seconds>', `kill the command after this long (default ${EXEC_LIMITS.defaultTimeoutMs / 1000})`)
    .action(async (workload: string, argv: string[], options: { stdin?: boolean; timeout?: string }) => {
      const timeoutMs = parseTimeout(options.timeout);
      const body = { argv, ...(options.stdin ? { stdin: await readStdin(EXEC_LIMITS.stdinBytes) } : {}), ...(timeoutMs === undefined ? {} : { timeoutMs }) };
      const s = session();
      const result = await s.api.request<ExecResult>('POST', `/v1/workloads/${encodeURIComponent(workload)}/exec`, body);
      if (s.format !== 'table') {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      } else {
        process.stdout.write(result.stdout);
        process.stderr.write(result.stderr);
        if (result.truncated.stdout || result.truncated.stderr) process.stderr.write(`ferry: output cut at ${EXEC_LIMITS.outputBytes / 1024} KiB per stream\n`);
        if (result.killedBecause) process.stderr.write(`ferry: the command was killed: ${result.killedBecause}\n`);
        if (result.timedOut) process.stderr.write(`ferry: the command was killed after ${(timeoutMs ?? EXEC_LIMITS.defaultTimeoutMs) / 1000} s\n`);
      }
      // as a shell reports a signal: 128 + n (a timeout's SIGKILL: 137)
      process.exitCode = result.exitCode ?? (result.signal === 'SIGKILL' ? 137 : EXIT.failed);
    });

  program
    .command('console <workload>')
    .description('an interactive shell in a running workload, through the API (operator role); Ctrl-] leaves it. Ends when the shell exits or the workload migrates')
    .action(async (workload: string) => {
      const s = session();
      const size = { rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 };
      const term = process.env.TERM && /^[A-Za-z0-9._+-]{1,40}$/.test(process.env.TERM) ? process.env.TERM : 'xterm-256color';
      const ticket = await s.api.request<ConsoleTicket>('POST', `/v1/workloads/${encodeURIComponent(workload)}/console`, { ...size, term });
      const connection = await ConsoleConnection.open(s.api.target, ticket);
      const tty = process.stdin.isTTY;
      process.stderr.write(`ferry: console of ${ticket.workloadId} on ${ticket.hostId} (Ctrl-] leaves)\r\n`);
      connection.onData = (bytes) => process.stdout.write(bytes);
      const onInput = (chunk: Buffer) => {
        const at = chunk.indexOf(DETACH);
        if (at >= 0) {
          if (at > 0) connection.write(chunk.subarray(0, at));
          connection.close();
          return;
        }
        connection.write(chunk);
      };
      const onResize = () => connection.resize(process.stdout.rows || 24, process.stdout.columns || 80);
      if (tty) process.stdin.setRawMode(true);
      process.stdin.on('data', onInput);
      process.stdin.resume();
      process.stdout.on('resize', onResize);
      try {
        const ended = await connection.ended;
        process.stderr.write(`\r\nferry: ${ended.reason}${ended.exitCode === null ? '' : ` (exit ${ended.exitCode})`}\r\n`);
        process.exitCode = ended.exitCode ?? (ended.reason === 'detached' ? EXIT.ok : EXIT.failed);
      } finally {
        if (tty) process.stdin.setRawMode(false);
        process.stdin.off('data', onInput);
        process.stdin.pause();
        process.stdout.off('resize', onResize);
      }
    });
}
