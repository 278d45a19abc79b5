import { parseArgs } from 'node:util';
import { createLogger, exitOnStartError, runUntilStopped } from '@ferry/runtime';
import { loadSchedulerConfig } from './config.ts';
import { startScheduler } from './scheduler.ts';

const log = createLogger('scheduler');

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } }, strict: true });
  const config = loadSchedulerConfig(values.config ?? process.env.FERRY_SCHEDULER_CONFIG);
  const scheduler = await startScheduler(config, log);
  runUntilStopped(log, () => scheduler.stop());
}

main().catch((err: unknown) => exitOnStartError(log, err));
