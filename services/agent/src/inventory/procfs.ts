import type { CpuInfo, LoadInfo, MemoryInfo } from '@ferry/protocol';

/** Splits /proc/cpuinfo into one key/value map per processor. */
function processorBlocks(text: string): Map<string, string>[] {
  return text
    .split(/\n\s*\n/)
    .map((block) => {
      const fields = new Map<string, string>();
      for (const line of block.split('\n')) {
        const colon = line.indexOf(':');
        if (colon > 0) fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      return fields;
    })
    .filter((fields) => fields.has('processor'));
}

/**
 * CPU identity from /proc/cpuinfo (x86 layout). Flags are the intersection over all processors,
 * so a migration never relies on a flag only some cores have.
 */
export function parseCpuInfo(text: string): CpuInfo {
  const blocks = processorBlocks(text);
  if (blocks.length === 0) throw new Error('no processor entries in /proc/cpuinfo');
  const first = blocks[0]!;
  const flagSets = blocks.map((block) => new Set((block.get('flags') ?? '').split(/\s+/).filter(Boolean)));
  const flags = [...flagSets[0]!].filter((flag) => flagSets.every((set) => set.has(flag)));
  const int = (key: string) => {
    const value = Number.parseInt(first.get(key) ?? '', 10);
    return Number.isFinite(value) ? value : 0;
  };
  return {
    vendor: first.get('vendor_id') ?? 'unknown',
    family: int('cpu family'),
    model: int('model'),
    modelName: first.get('model name') ?? '',
    flags: flags.sort(),
    count: blocks.length,
  };
}

/** MemTotal and MemAvailable from /proc/meminfo, in bytes. */
export function parseMemInfo(text: string): MemoryInfo {
  const kib = (key: string) => {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!match) throw new Error(`/proc/meminfo has no ${key}`);
    return Number(match[1]) * 1024;
  };
  return { totalBytes: kib('MemTotal'), availableBytes: kib('MemAvailable') };
}

export function parseLoadAvg(text: string): LoadInfo {
  const [one, five, fifteen] = text.trim().split(/\s+/).map(Number);
  if (![one, five, fifteen].every((value) => Number.isFinite(value))) throw new Error(`bad /proc/loadavg: ${text}`);
  return { one: one!, five: five!, fifteen: fifteen! };
}
