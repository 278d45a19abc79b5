import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** One structured logger per service; callers derive child loggers per job or migration. */
export function createLogger(service: string, bindings: Record<string, unknown> = {}): Logger {
  return pino({
    level: process.env.FERRY_LOG_LEVEL ?? 'info',
    base: { service, pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
