import { parseArgs } from 'node:util';
import { createLogger, exitOnStartError, runUntilStopped } from '@ferry/runtime';
import { loadApiConfig } from './config.ts';
import { startApi } from './server.ts';

const log = createLogger('api');

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } }, strict: true });
  const config = loadApiConfig(values.config ?? process.env.FERRY_API_CONFIG);
  const api = await startApi(config, log);
  runUntilStopped(log, () => api.stop());
}

main().catch((err: unknown) => exitOnStartError(log, err));
