import type { CriuReport } from '@ferry/protocol';
import type { Criu } from '../containers/criu.ts';

const TIMEOUT_MS = 20_000;

async function passes(criu: Criu, args: string[]): Promise<boolean> {
  return (await criu.run(args, TIMEOUT_MS)).exitCode === 0;
}

/** Parses `criu --version` ("Version: 4.2.1"). */
export function parseCriuVersion(output: string): string | null {
  return /^Version:\s*(\S+)/m.exec(output)?.[1] ?? null;
}

/** What this host's CRIU can do; null when the configured CRIU does not run. */
export async function probeCriu(criu: Criu): Promise<CriuReport | null> {
  const versionRun = await criu.run(['--version'], TIMEOUT_MS);
  const version = versionRun.exitCode === 0 ? parseCriuVersion(versionRun.stdout) : null;
  if (!version) return null;
  const [usable, memDirtyTrack, uffdNoncoop] = await Promise.all([
    passes(criu, ['check']),
    passes(criu, ['check', '--feature', 'mem_dirty_track']),
    passes(criu, ['check', '--feature', 'uffd-noncoop']),
  ]);
  return { version, usable, features: { memDirtyTrack, uffdNoncoop } };
}
