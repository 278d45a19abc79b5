import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { execa } from 'execa';
import { z } from 'zod';

const RuncState = z.object({
  id: z.string(),
  pid: z.number().int().nonnegative(),
  status: z.string(),
  bundle: z.string(),
});
export type RuncState = z.infer<typeof RuncState>;

export class RuncError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'RuncError';
  }
}

/** runc, with this host's own state directory (so lab hosts on one machine never see each other's containers). */
export class Runc {
  constructor(
    private readonly root: string,
    private readonly binary = 'runc',
  ) {}

  private async run(args: string[], timeoutMs = 60_000): Promise<string> {
    const result = await execa(this.binary, ['--root', this.root, ...args], { reject: false, timeout: timeoutMs });
    if (result.exitCode !== 0) {
      throw new RuncError(`runc ${args[0]} failed: ${(result.stderr || result.stdout).trim()}`, result.stderr);
    }
    return result.stdout;
  }

  /**
   * `runc run --detach`. The container inherits its stdio from runc, so they must be real files
   * (never pipes to the agent, which may restart): runc is spawned with the console log's fd
   * directly, which execa cannot do for asynchronous runs.
   */
  runDetached(id: string, bundle: string, pidFile: string, consoleLog: string, timeoutMs = 60_000): Promise<void> {
    const fd = openSync(consoleLog, 'a');
    try {
      const child = spawn(this.binary, ['--root', this.root, 'run', '--detach', '--pid-file', pidFile, '--bundle', bundle, id], {
        stdio: ['ignore', fd, fd],
        timeout: timeoutMs,
      });
      return new Promise((resolve, reject) => {
        child.on('error', reject);
        child.on('exit', (code, signal) => {
          if (code === 0) resolve();
          else reject(new RuncError(`runc run ${id} failed (${signal ?? `exit ${code}`}); see ${consoleLog}`, ''));
        });
      });
    } finally {
      closeSync(fd);
    }
  }

  async state(id: string): Promise<RuncState | null> {
    try {
      return RuncState.parse(JSON.parse(await this.run(['state', id])));
    } catch (err) {
      if (err instanceof RuncError && /does not exist|not found/i.test(err.message)) return null;
      throw err;
    }
  }

  async list(): Promise<RuncState[]> {
    const out = await this.run(['list', '--format', 'json']);
    const parsed: unknown = JSON.parse(out || 'null');
    return parsed === null ? [] : z.array(RuncState).parse(parsed);
  }

  async kill(id: string, signal: 'TERM' | 'KILL'): Promise<void> {
    await this.run(['kill', id, signal]);
  }

  async delete(id: string, force = false): Promise<void> {
    await this.run(force ? ['delete', '--force', id] : ['delete', id]);
  }
}
