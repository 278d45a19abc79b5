import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import { Criu } from './criu.ts';
import { relayArgv } from '../logs/console-log.ts';

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

/**
 * runc, with this host's own state directory (so lab hosts on one machine never see each other's
 * containers) and the configured CRIU binary for checkpoints and restores (`--criu`, the Criu
 * runner's binary: without it runc runs whatever `criu` is first on PATH).
 */
export class Runc {
  constructor(
    private readonly root: string,
    private readonly binary = 'runc',
    private readonly criu = new Criu(),
  ) {}

  /** runc's global options: state root and CRIU binary, before every command. */
  private globals(): string[] {
    return ['--root', this.root, '--criu', this.criu.binary];
  }

  /** Command and arguments of a runc invocation on this host's state root (for callers that spawn it themselves). */
  argv(args: string[]): [string, string[]] {
    return [this.binary, [...this.globals(), ...args]];
  }

  /** `runc checkpoint` that ends with the dump (not the lazy kind, which keeps serving pages). */
  async checkpoint(args: string[], timeoutMs: number): Promise<void> {
    await this.run(['checkpoint', ...args], timeoutMs);
  }

  private async run(args: string[], timeoutMs = 60_000): Promise<string> {
    const result = await execa(this.binary, [...this.globals(), ...args], { reject: false, timeout: timeoutMs });
    if (result.exitCode !== 0) {
      throw new RuncError(`runc ${args[0]} failed: ${(result.stderr || result.stdout).trim()}`, result.stderr);
    }
    return result.stdout;
  }

  /**
   * Runs a runc command that leaves a container behind (`run --detach`, `restore --detach`). The
   * container inherits runc's stdio, so it gets an anonymous pipe to a relay (`cat >> log`) that
   * outlives runc and the agent: a pipe is what CRIU can checkpoint and runc re-wires on restore,
   * unlike a file whose path differs between hosts or a pipe to the agent, which may restart.
   * The relay rotates the log at a size cap (logs/console-log.ts: RELAY_SCRIPT).
   */
  async detached(args: string[], consoleLog: string, timeoutMs = 120_000): Promise<void> {
    const result = await execa('bash', relayArgv(consoleLog, [this.binary, ...this.globals(), ...args]), {
      reject: false,
      timeout: timeoutMs,
      // runc's own output goes to the console log through the relay; nothing comes back here
      stdio: 'ignore',
    });
    if (result.exitCode !== 0) throw new RuncError(`runc ${args[0]} failed (exit ${result.exitCode}); see ${consoleLog}`, '');
  }

  runDetached(id: string, bundle: string, pidFile: string, consoleLog: string, timeoutMs = 60_000): Promise<void> {
    return this.detached(['run', '--detach', '--pid-file', pidFile, '--bundle', bundle, id], consoleLog, timeoutMs);
  }

  async resume(id: string): Promise<void> {
    await this.run(['resume', id]);
  }

  async pause(id: string): Promise<void> {
    await this.run(['pause', id]);
  }

  /** Whether runc's state root holds anything of `id` (without running runc). */
  async hasState(id: string): Promise<boolean> {
    return access(join(this.root, id)).then(
      () => true,
      () => false,
    );
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
