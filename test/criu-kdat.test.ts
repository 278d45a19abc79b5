import { mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { createLogger } from '@ferry/runtime';
import { Criu } from '../services/agent/src/containers/criu.ts';
import { ensureKdatCache } from '../services/agent/src/containers/criu-kdat.ts';
import { skipLab } from './helpers/lab.ts';

/**
 * CRIU's kernel-probe cache on a host whose /run is not a tmpfs (this machine's): the agent makes
 * it, CRIU loads it, and it is made again when its stamp (boot, CRIU) no longer matches.
 */
describe.skipIf(skipLab())("CRIU's kernel-probe cache (real CRIU, unshare)", () => {
  const criu = new Criu(process.env.FERRY_CRIU ?? 'criu');
  const log = createLogger('test').child({}, { level: 'silent' });
  const runTmpfs = statfsSync('/run').type === 0x01021994;

  /** What a CRIU run says about the cache in its log. */
  const criuSays = async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-kdat-'));
    try {
      await execa(criu.binary, ['check', '-v4', '--log-file', join(dir, 'check.log')], { reject: false });
      return readFileSync(join(dir, 'check.log'), 'utf8');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('is made where CRIU would not keep it (left to CRIU on a tmpfs /run), loaded by CRIU, kept while fresh and made again when stale', async () => {
    if (runTmpfs) {
      expect(await ensureKdatCache(criu, log)).toBe('tmpfs');
      return;
    }
    expect(['made', 'fresh']).toContain(await ensureKdatCache(criu, log));
    expect(await criuSays()).toMatch(/Loaded kdat cache from \/run\/criu\.kdat/);
    expect(await ensureKdatCache(criu, log)).toBe('fresh');
    // another boot (or another CRIU) made it: it is made anew
    writeFileSync('/run/ferry-criu-kdat.stamp', 'another-boot criu Version: 0\n');
    expect(await ensureKdatCache(criu, log)).toBe('made');
    expect(readFileSync('/run/ferry-criu-kdat.stamp', 'utf8')).toContain(readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    expect(await criuSays()).toMatch(/Loaded kdat cache/);
  });
});
