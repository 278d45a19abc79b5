import { readFileSync } from 'node:fs';
import { z } from 'zod';

export class ConfigError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Maps environment variable names to dotted config paths, e.g. { FERRY_NATS_URL: 'natsUrl' }. */
export type EnvMap = Record<string, string>;

export interface LoadConfigOptions {
  /** JSON config file; missing is an error only when given explicitly */
  file?: string | undefined;
  env?: NodeJS.ProcessEnv;
  envMap?: EnvMap;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
}

/** Readable one-line-per-problem description of a zod error, each naming the field. */
export function describeIssues(error: z.ZodError, origin?: (path: string) => string): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(root)';
    const from = origin ? ` (${origin(path)})` : '';
    return `${path}: ${issue.message}${from}`;
  });
}

/**
 * Config = JSON file, then environment variables on top, validated by the schema.
 * Throws ConfigError naming every bad field and where its value came from.
 */
export function loadConfig<S extends z.ZodType>(schema: S, options: LoadConfigOptions = {}): z.output<S> {
  const env = options.env ?? process.env;
  let raw: Record<string, unknown> = {};
  if (options.file) {
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${options.file}: ${(err as Error).message}`, []);
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw new Error('the top level must be a JSON object');
      }
      raw = parsed as Record<string, unknown>;
    } catch (err) {
      throw new ConfigError(`config file ${options.file} is not valid JSON: ${(err as Error).message}`, []);
    }
  }
  const fromEnv = new Map<string, string>();
  for (const [name, path] of Object.entries(options.envMap ?? {})) {
    const value = env[name];
    if (value !== undefined && value !== '') {
      setPath(raw, path, value);
      fromEnv.set(path, name);
    }
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    // a problem inside a value an environment variable gave (cpuBaseline.vendor of
    // FERRY_CPU_BASELINE's JSON) is that variable's; one nobody gave is a setting not set
    const origin = (path: string) => {
      const variable = [...fromEnv.entries()].find(([given]) => path === given || path.startsWith(`${given}.`))?.[1];
      return variable ? `from ${variable}` : options.file ? `in ${options.file}` : 'not set';
    };
    const problems = describeIssues(result.error, origin);
    throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`, problems);
  }
  return result.data;
}

/** A config value given as JSON text in an environment variable (objects, lists). */
export const jsonText = (value: unknown): unknown => {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    return value; // the schema then says what is wrong with it
  }
};

/** A yes/no setting: a boolean in a file, `true` or `false` in an environment variable. */
export const flag = () => z.union([z.boolean(), z.enum(['true', 'false']).transform((v) => v === 'true')]);
