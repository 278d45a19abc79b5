import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import { EXIT, CliError } from './errors.ts';

export const Context = z.strictObject({
  url: z.url(),
  token: z.string().min(1),
  /** the cluster CA certificate an https API's certificate is checked against (a path) */
  ca: z.string().startsWith('/', 'must be an absolute path').optional(),
});
export const CliConfig = z.strictObject({
  current: z.string().nullable().default(null),
  contexts: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/), Context).default({}),
});
export type CliConfig = z.infer<typeof CliConfig>;

export const defaultConfigFile = () => process.env.FERRY_CONFIG ?? join(homedir(), '.config', 'ferry', 'config.yaml');

export function loadConfig(file: string): CliConfig {
  if (!existsSync(file)) return { current: null, contexts: {} };
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8')) ?? {};
  } catch (err) {
    throw new CliError(`${file} is not valid YAML: ${(err as Error).message}. Fix it or remove it and run 'ferry context set'.`, EXIT.usage);
  }
  const parsed = CliConfig.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new CliError(`${file} is not a ferry config: ${problems}. Fix it or remove it and run 'ferry context set'.`, EXIT.usage);
  }
  return parsed.data;
}

/** Written readable by its owner only: it holds tokens. */
export function saveConfig(file: string, config: CliConfig): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, stringify(config), { mode: 0o600 });
  chmodSync(file, 0o600);
}

export interface Target {
  url: string;
  token: string;
  /** where it came from, for error messages */
  from: string;
  /** the cluster CA (PEM) to verify an https API against; undefined: the system's CAs */
  ca?: string;
}

/** where `ferry-admin init` and `ferry-agent join` leave the cluster CA's certificate */
export const INSTALLED_CA_FILE = '/etc/ferry/ca.crt';

/** The cluster CA for an https API: FERRY_CA_FILE, else the context's, else an installed one. */
function clusterCa(url: string, contextCa: string | undefined): string | undefined {
  if (!url.startsWith('https:')) return undefined;
  const file = process.env.FERRY_CA_FILE || contextCa || (existsSync(INSTALLED_CA_FILE) ? INSTALLED_CA_FILE : undefined);
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read the cluster CA certificate ${file}: ${(err as Error).message}`, EXIT.usage);
  }
}

/** Flags, then environment, then the chosen (or current) context. */
export function resolveTarget(options: { url?: string; token?: string; context?: string; config: string }): Target {
  const config = loadConfig(options.config);
  const name = options.context ?? config.current;
  if (options.context && !config.contexts[options.context]) {
    throw new CliError(`no context ${options.context} in ${options.config}. See 'ferry context list', or add it with 'ferry context set ${options.context} --url URL --token TOKEN'.`, EXIT.usage);
  }
  const context = name ? config.contexts[name] : undefined;
  // an empty variable counts as unset
  const url = options.url || process.env.FERRY_API_URL || context?.url;
  const token = options.token || process.env.FERRY_API_TOKEN || context?.token;
  if (!url || !token) {
    throw new CliError(
      `no API to talk to: give --url and --token, set FERRY_API_URL and FERRY_API_TOKEN, or add a context with 'ferry context set NAME --url URL --token TOKEN' (npm start prints both).`,
      EXIT.usage,
    );
  }
  const ca = clusterCa(url, context?.ca);
  return { url: url.replace(/\/$/, ''), token, from: options.url ? '--url' : process.env.FERRY_API_URL ? 'FERRY_API_URL' : `context ${name}`, ...(ca ? { ca } : {}) };
}
