import type { Logger } from 'pino';

/** Runs `stop` once on SIGINT or SIGTERM, then exits; a stop that hangs is cut off after 10 s. */
export function runUntilStopped(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ why }, 'stopping');
    const force = setTimeout(() => {
      log.error('stop took longer than 10 s; exiting');
      process.exit(1);
    }, 10_000);
    force.unref();
    try {
      await stop();
      log.info('stopped');
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'error while stopping');
      process.exit(1);
    }
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

/** Logs and exits on a fatal start-up error (bad config, unreachable dependency). */
export function exitOnStartError(log: Logger, err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  log.fatal({ err }, message);
  process.stderr.write(`${message}\n`);
  process.exit(2);
}
