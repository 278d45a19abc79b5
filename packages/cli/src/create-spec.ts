import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { WorkloadSpec, type WorkloadSpecInput } from '@ferry/protocol';
import { UsageError } from './errors.ts';

/** `ferry create` flags, as commander hands them over (strings; repeatable ones as lists). */
export interface CreateFlags {
  template?: string;
  memory?: string;
  cpus?: string;
  disk?: string;
  pids?: string;
  address?: string[];
  network?: string;
  pool?: string;
  label?: string[];
  env?: string[];
  host?: string[];
  ha?: boolean;
  haPriority?: string;
}

/** What a VPS gets when a flag does not say: half a core, 256 MiB, 1 GiB on the local pool, its init. */
export const CREATE_DEFAULTS = { cpus: 0.5, memoryMiB: 256, diskMiB: 1024, pool: 'local', command: ['/sbin/init'] } as const;

const UNITS: Record<string, number> = { '': 1, m: 1, mi: 1, mb: 1, mib: 1, g: 1024, gi: 1024, gb: 1024, gib: 1024, t: 1024 * 1024, ti: 1024 * 1024, tb: 1024 * 1024, tib: 1024 * 1024 };

/** A size in MiB: `512` (MiB), `512M`, `1.5G`, `2GiB`, `1T`; a whole number of MiB or an error. */
export function parseMiB(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = match ? UNITS[match[2]!.toLowerCase()] : undefined;
  if (!match || unit === undefined) throw new UsageError(`${flag} ${text}: not a size (use e.g. 512M, 1.5G or 2GiB; a bare number is MiB)`);
  const mib = Number(match[1]) * unit;
  if (!Number.isInteger(mib)) throw new UsageError(`${flag} ${text}: must come to a whole number of MiB (${mib} MiB)`);
  return mib;
}

function parseNumber(text: string, flag: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} ${text}: not a number`);
  return n;
}

/** `--label k=v` (repeatable): a map; a key given twice is an error. */
export function parseLabels(terms: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const term of terms) {
    const eq = term.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label ${term}: must be KEY=VALUE`);
    const key = term.slice(0, eq);
    if (key in labels) throw new UsageError(`--label ${key} given twice`);
    labels[key] = term.slice(eq + 1);
  }
  return labels;
}

/** `--address [NETWORK=]IP` (repeatable; the network defaults to --network). */
export function parseAddresses(terms: string[], network: string | undefined): Array<{ network: string; address: string }> {
  return terms.map((term) => {
    const eq = term.indexOf('=');
    const net = eq >= 0 ? term.slice(0, eq) : network;
    if (!net) throw new UsageError(`--address ${term}: which network? Write NETWORK=IP (e.g. prod=10.77.0.20) or add --network NETWORK`);
    return { network: net, address: eq >= 0 ? term.slice(eq + 1) : term };
  });
}

/** The spec the flags describe (not yet validated: see checkSpec). */
export function specFromFlags(name: string, command: string[], flags: CreateFlags): WorkloadSpecInput {
  if (!flags.template) throw new UsageError('ferry create NAME needs --template TEMPLATE (or a spec file: ferry create -f spec.json)');
  const spec: WorkloadSpecInput = {
    id: name,
    template: flags.template,
    command: command.length > 0 ? command : [...CREATE_DEFAULTS.command],
    resources: {
      vcpus: flags.cpus === undefined ? CREATE_DEFAULTS.cpus : parseNumber(flags.cpus, '--cpus'),
      memoryMiB: flags.memory === undefined ? CREATE_DEFAULTS.memoryMiB : parseMiB(flags.memory, '--memory'),
      diskMiB: flags.disk === undefined ? CREATE_DEFAULTS.diskMiB : parseMiB(flags.disk, '--disk'),
      ...(flags.pids === undefined ? {} : { pids: parseNumber(flags.pids, '--pids') }),
    },
    networks: parseAddresses(flags.address ?? [], flags.network),
    pool: flags.pool ?? CREATE_DEFAULTS.pool,
    labels: parseLabels(flags.label ?? []),
    env: flags.env ?? [],
  };
  if (flags.ha || flags.haPriority !== undefined) spec.ha = { enabled: true, priority: flags.haPriority === undefined ? 0 : parseNumber(flags.haPriority, '--ha-priority') };
  if (flags.host?.length) spec.placement = { hosts: flags.host };
  return spec;
}

/** A spec file (JSON, or YAML, which JSON is a part of); NAME, when given, names the workload. */
export function specFromFile(path: string, name: string | undefined, read: (p: string) => string = (p) => readFileSync(p, 'utf8')): unknown {
  let text: string;
  try {
    text = read(path);
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new UsageError(`${path} is neither JSON nor YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UsageError(`${path} must hold one workload spec (an object), not ${Array.isArray(raw) ? 'a list' : typeof raw}`);
  return name === undefined ? raw : { ...raw, id: name };
}

/** One line per problem, `field: message` (the API's problems print the same way). */
export const problemLines = (problems: Array<{ field: string; message: string }>): string => problems.map((p) => `  ${p.field}: ${p.message}`).join('\n');

/** The spec checked as the API will check it (WorkloadSpec); every problem at once, nothing sent. */
export function checkSpec(raw: unknown, origin: string): WorkloadSpecInput {
  const parsed = WorkloadSpec.safeParse(raw);
  if (parsed.success) return raw as WorkloadSpecInput;
  const problems = parsed.error.issues.map((i) => ({ field: i.path.map(String).join('.') || '(spec)', message: i.message }));
  throw new UsageError(`${problems.length} problem(s) with ${origin}, nothing was sent:\n${problemLines(problems)}`);
}
