import { readFile } from 'node:fs/promises';
import { execa } from 'execa';

export class CriuError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'CriuError';
  }
}

/** A CRIU daemon's pid file: CRIU writes it before `--daemon` returns. */
async function daemonPid(pidFile: string): Promise<number> {
  return Number((await readFile(pidFile, 'utf8')).trim());
}

/**
 * CRIU, as this host is configured to run it (`criuPath`, `FERRY_CRIU`): the one binary the agent
 * probes and reports, that runc is told to use (`--criu`, see Runc) and that runs the migration's
 * page servers and lazy-pages daemons — never just whatever `criu` is first on PATH.
 */
export class Criu {
  constructor(readonly binary = 'criu') {}

  /** Command and arguments of a CRIU invocation (for callers that spawn it themselves). */
  argv(args: string[]): [string, string[]] {
    return [this.binary, args];
  }

  /** Runs CRIU to its end; the exit code is the caller's to judge (probes expect failures). */
  async run(args: string[], timeoutMs = 30_000): Promise<{ exitCode: number | undefined; stdout: string; stderr: string; failure: string }> {
    const result = await execa(this.binary, args, { reject: false, timeout: timeoutMs });
    // `failure`: what went wrong when CRIU said nothing (not found, timed out, killed)
    return { exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr, failure: result.failed ? (result.shortMessage ?? 'failed') : '' };
  }

  private async daemon(args: string[], pidFile: string, timeoutMs: number): Promise<number> {
    const result = await this.run([...args, '--daemon', '--pidfile', pidFile], timeoutMs);
    if (result.exitCode !== 0) throw new CriuError(`criu ${args[0]} failed: ${(result.stderr || result.stdout).trim() || result.failure}`, result.stderr);
    return daemonPid(pidFile);
  }

  /**
   * `criu page-server --daemon` writing into `imagesDir`; resolves with its pid. CRIU binds and
   * listens before it forks, so the port accepts once this returns. Never probe it with a connect:
   * a page server accepts exactly one connection, then stops listening.
   */
  pageServer(o: { imagesDir: string; address: string; port: number; tlsArgs: string[]; pidFile: string; logFile: string }, timeoutMs = 30_000): Promise<number> {
    return this.daemon(['page-server', '--images-dir', o.imagesDir, '--address', o.address, '--port', String(o.port), ...o.tlsArgs, '-o', o.logFile], o.pidFile, timeoutMs);
  }

  /**
   * `criu lazy-pages --page-server --daemon`: connects to the source's lazy page server now; the
   * process restored from `imagesDir` then faults its missing pages in through it. Resolves with
   * its pid. `logFile` is relative to `workDir`.
   */
  lazyPages(o: { source: { address: string; port: number }; tlsArgs: string[]; imagesDir: string; workDir: string; pidFile: string; logFile: string }, timeoutMs = 30_000): Promise<number> {
    return this.daemon(
      ['lazy-pages', '--page-server', '--address', o.source.address, '--port', String(o.source.port), ...o.tlsArgs, '--images-dir', o.imagesDir, '--work-dir', o.workDir, '-o', o.logFile],
      o.pidFile,
      timeoutMs,
    );
  }
}
