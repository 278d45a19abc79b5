import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { CpuInfo, LoadInfo, MemoryInfo } from '@ferry/protocol';
import { parseCpuInfo, parseLoadAvg, parseMemInfo } from './procfs.ts';

export { probeCriu } from './criu.ts';
export { probePool } from './pools.ts';

export async function readCpu(override?: Partial<CpuInfo>): Promise<CpuInfo> {
  const real = parseCpuInfo(await readFile('/proc/cpuinfo', 'utf8'));
  return { ...real, ...override };
}

export async function readMemory(): Promise<MemoryInfo> {
  return parseMemInfo(await readFile('/proc/meminfo', 'utf8'));
}

export async function readLoad(): Promise<LoadInfo> {
  return parseLoadAvg(await readFile('/proc/loadavg', 'utf8'));
}

export const readHostname = (): string => hostname();
