import { execa } from 'execa';
import type { CriuReport } from '@ferry/protocol';

const TIMEOUT_MS = 20_000;

async function passes(criu: string, args: string[]): Promise<boolean> {
  const result = await execa(criu, args, { reject: false, timeout: TIMEOUT_MS });
  return result.exitCode === 0;
}

/** Parses `criu --version` ("Version: 4.2.1"). */
export function parseCriuVersion(output: string): string | null {
  return /^Version:\s*(\S+)/m.exec(output)?.[1] ?? null;
}

/** What this host's CRIU can do; null when there is no runnable CRIU at `criu`. */
export async function probeCriu(criu: string): Promise<CriuReport | null> {
  const versionRun = await execa(criu, ['--version'], { reject: false, timeout: TIMEOUT_MS });
  const version = versionRun.exitCode === 0 ? parseCriuVersion(versionRun.stdout) : null;
  if (!version) return null;
  const [usable, memDirtyTrack, uffdNoncoop] = await Promise.all([
    passes(criu, ['check']),
    passes(criu, ['check', '--feature', 'mem_dirty_track']),
    passes(criu, ['check', '--feature', 'uffd-noncoop']),
  ]);
  return { version, usable, features: { memDirtyTrack, uffdNoncoop } };
}
