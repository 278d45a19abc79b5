import type { Command } from 'commander';
import { ApiClient } from './client.ts';
import { defaultConfigFile, resolveTarget } from './config.ts';
import { UsageError } from './errors.ts';
import type { Format } from './output.ts';

export interface Session {
  api: ApiClient;
  format: Format;
}

export interface GlobalOptions {
  output: string;
  context?: string;
  config?: string;
  url?: string;
  token?: string;
}

export const outputFormat = (value: string): Format => {
  if (value !== 'table' && value !== 'json' && value !== 'yaml') throw new UsageError(`-o must be table, json or yaml, not ${value}`);
  return value;
};

/** The API and output format the global options (then environment, then context) name. */
export function sessionOf(program: Command): Session {
  const o = program.opts<GlobalOptions>();
  const target = resolveTarget({ config: o.config ?? defaultConfigFile(), ...(o.url ? { url: o.url } : {}), ...(o.token ? { token: o.token } : {}), ...(o.context ? { context: o.context } : {}) });
  return { api: new ApiClient(target), format: outputFormat(o.output) };
}
