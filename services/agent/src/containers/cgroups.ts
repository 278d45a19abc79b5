import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type CgroupVersion = 1 | 2;

const ROOT = '/sys/fs/cgroup';

export function cgroupVersion(): CgroupVersion {
  return existsSync(join(ROOT, 'cgroup.controllers')) ? 2 : 1;
}

export interface CgroupSample {
  memoryBytes: number;
  memoryLimitBytes: number;
  cpuNanos: number;
  pids: number;
  oomKills: number;
}

async function readNumber(path: string): Promise<number> {
  const text = (await readFile(path, 'utf8')).trim();
  return text === 'max' ? Number.MAX_SAFE_INTEGER : Number(text);
}

/** "key value" lines (memory.stat, memory.events, cpu.stat, memory.oom_control) */
export function parseKeyValues(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined) values.set(key, Number(value));
  }
  return values;
}

const keyValues = async (path: string) => parseKeyValues(await readFile(path, 'utf8'));

/**
 * Usage and OOM kills of a container's cgroup (the path runc was given), read straight from the
 * cgroup filesystem, v1 or v2. Returns null when the cgroup does not exist.
 */
export async function sampleCgroup(cgroupsPath: string, version: CgroupVersion = cgroupVersion()): Promise<CgroupSample | null> {
  try {
    if (version === 2) {
      const dir = join(ROOT, cgroupsPath);
      const [current, limit, stat, cpu, events, pids] = await Promise.all([
        readNumber(join(dir, 'memory.current')),
        readNumber(join(dir, 'memory.max')),
        keyValues(join(dir, 'memory.stat')),
        keyValues(join(dir, 'cpu.stat')),
        keyValues(join(dir, 'memory.events')),
        readNumber(join(dir, 'pids.current')),
      ]);
      return {
        memoryBytes: Math.max(0, current - (stat.get('inactive_file') ?? 0)),
        memoryLimitBytes: limit,
        cpuNanos: (cpu.get('usage_usec') ?? 0) * 1000,
        pids,
        oomKills: events.get('oom_kill') ?? 0,
      };
    }
    const memory = join(ROOT, 'memory', cgroupsPath);
    const [usage, limit, stat, oom, cpuNanos, pids] = await Promise.all([
      readNumber(join(memory, 'memory.usage_in_bytes')),
      readNumber(join(memory, 'memory.limit_in_bytes')),
      keyValues(join(memory, 'memory.stat')),
      keyValues(join(memory, 'memory.oom_control')),
      readNumber(join(ROOT, 'cpuacct', cgroupsPath, 'cpuacct.usage')),
      readNumber(join(ROOT, 'pids', cgroupsPath, 'pids.current')),
    ]);
    return {
      memoryBytes: Math.max(0, usage - (stat.get('total_inactive_file') ?? 0)),
      memoryLimitBytes: limit,
      cpuNanos,
      pids,
      oomKills: oom.get('oom_kill') ?? 0,
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The pids in a container's cgroup (v1: its freezer hierarchy); null when the cgroup is gone. */
export async function cgroupPids(cgroupsPath: string, version: CgroupVersion = cgroupVersion()): Promise<number[] | null> {
  const dir = version === 2 ? join(ROOT, cgroupsPath) : join(ROOT, 'freezer', cgroupsPath);
  try {
    return (await readFile(join(dir, 'cgroup.procs'), 'utf8')).split('\n').filter(Boolean).map(Number);
  } catch {
    return null;
  }
}

/**
 * Fences a container through its cgroup alone, without runc or CRIU (the fence guard's way: it
 * must work with nothing else running). Freeze stops its processes where they are; stop kills
 * them — v2 with cgroup.kill, v1 by freezing first so nothing forks between reading the list and
 * the signals (SIGKILL is delivered on thaw).
 */
export async function fenceCgroup(cgroupsPath: string, action: 'stop' | 'freeze', version: CgroupVersion = cgroupVersion()): Promise<void> {
  if (version === 2) {
    const dir = join(ROOT, cgroupsPath);
    if (action === 'freeze') return writeFile(join(dir, 'cgroup.freeze'), '1');
    if (existsSync(join(dir, 'cgroup.kill'))) return writeFile(join(dir, 'cgroup.kill'), '1');
    await writeFile(join(dir, 'cgroup.freeze'), '1');
    for (const pid of (await cgroupPids(cgroupsPath, 2)) ?? []) killQuietly(pid);
    return writeFile(join(dir, 'cgroup.freeze'), '0');
  }
  const state = join(ROOT, 'freezer', cgroupsPath, 'freezer.state');
  await writeFile(state, 'FROZEN');
  if (action === 'freeze') return;
  for (const pid of (await cgroupPids(cgroupsPath, 1)) ?? []) killQuietly(pid);
  await writeFile(state, 'THAWED');
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}
