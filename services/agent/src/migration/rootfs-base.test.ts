import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOTFS_BASE_FILE } from '../containers/rootfs.ts';
import { compareBases, sameRootfsBase } from './rootfs-base.ts';

const debian = { template: 'debian-12', version: 'da8ad37c2c4ab91e' };

describe('compareBases (may rsync trust its quick check against the destination prepared root?)', () => {
  it('yes when the destination snapshotted the same template name and content digest', () => {
    expect(compareBases(debian, { ...debian })).toBe(true);
  });

  it('yes when the destination root is empty (a plain directory pool, or no such template there)', () => {
    expect(compareBases(debian, null)).toBe(true);
    expect(compareBases(null, null)).toBe(true);
  });

  it('no against another version or another template, or when the source cannot say what its root came from', () => {
    expect(compareBases(debian, { ...debian, version: '0000000000000000' })).toBe(false);
    expect(compareBases(debian, { template: 'busybox', version: debian.version })).toBe(false);
    expect(compareBases(null, debian)).toBe(false);
  });
});

describe('sameRootfsBase with the base the destination prepare reported', () => {
  // an unreachable daemon: were it asked (an rsync connection), the call would fail
  const nowhere = { address: '127.0.0.1', port: 1, user: 'ferry', secret: 'x' };

  it('compares against what the prepare said, without asking the destination', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-rootfs-base-'));
    try {
      writeFileSync(join(dir, ROOTFS_BASE_FILE), JSON.stringify(debian));
      expect(await sameRootfsBase(dir, nowhere, dir, { ...debian })).toEqual({ same: true, source: debian, destination: debian });
      expect((await sameRootfsBase(dir, nowhere, dir, { ...debian, version: '0000000000000000' })).same).toBe(false);
      expect((await sameRootfsBase(dir, nowhere, dir, null)).same).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('asks the destination when the prepare did not say (an older agent)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-rootfs-base-'));
    try {
      await expect(sameRootfsBase(dir, nowhere, dir)).rejects.toThrow(/rsync/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
