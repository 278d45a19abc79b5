import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { execa } from 'execa';

/**
 * Starts a command that reports readiness by writing one byte to its fd 3 (CRIU's `--status-fd`,
 * through `runc checkpoint --lazy-pages ... --status-fd 3`): runc wants that fd write-only, so it
 * is the write end of a FIFO whose read end this process watches. Resolves when the byte arrives;
 * rejects if the command exits first or the timeout passes. The command keeps running.
 */
export async function spawnWithStatusFd(command: string, args: string[], fifo: string, logFd: number, timeoutMs: number): Promise<ChildProcess> {
  await execa('mkfifo', ['-m', '0600', fifo]);
  // O_RDWR never blocks on a FIFO, and makes the write-only open below non-blocking-safe.
  const readFd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
  const writeFd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ['ignore', logFd, logFd, writeFd] });
  } finally {
    closeSync(writeFd);
  }
  const reader = new Socket({ fd: readFd, readable: true, writable: false });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${command} gave no status within ${timeoutMs} ms`)), timeoutMs);
      reader.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${command} exited (${signal ?? `code ${code}`}) before it was ready`));
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
  } catch (err) {
    if (child.exitCode === null) child.kill('SIGKILL');
    throw err;
  } finally {
    reader.destroy();
  }
  return child;
}
