import { describe, expect, it } from 'vitest';
import { compareBases } from './rootfs-base.ts';

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
