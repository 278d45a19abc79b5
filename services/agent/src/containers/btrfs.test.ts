import { describe, expect, it } from 'vitest';
import { parseQgroupShow } from './btrfs.ts';

// `btrfs qgroup show -re --raw` of btrfs-progs 6.2, as this machine prints it
const SHOW = `Qgroupid    Referenced    Exclusive  Max referenced  Max exclusive   Path 
--------    ----------    ---------  --------------  -------------   ---- 
0/5              16384        16384            none           none   <toplevel>
0/256        154947584        16384            none           none   templates/debian-12@da8ad37c2c4ab91e
0/257        154947584        16384       268435456           none   containers/q1/rootfs
0/258        154947584        16384            none           none   <stale>
1/100                0            0            none           none   <under construction>
`;

describe('parseQgroupShow', () => {
  it('reads every level-0 group: usage, the referenced limit (none = no limit) and the path', () => {
    expect(parseQgroupShow(SHOW)).toEqual([
      { id: 5, referencedBytes: 16384, exclusiveBytes: 16384, maxReferencedBytes: null, path: '<toplevel>' },
      { id: 256, referencedBytes: 154947584, exclusiveBytes: 16384, maxReferencedBytes: null, path: 'templates/debian-12@da8ad37c2c4ab91e' },
      { id: 257, referencedBytes: 154947584, exclusiveBytes: 16384, maxReferencedBytes: 268435456, path: 'containers/q1/rootfs' },
      { id: 258, referencedBytes: 154947584, exclusiveBytes: 16384, maxReferencedBytes: null, path: '<stale>' },
    ]);
  });

  it('finds nothing in an error or an empty answer', () => {
    expect(parseQgroupShow('')).toEqual([]);
    expect(parseQgroupShow("ERROR: can't list qgroups: quotas not enabled")).toEqual([]);
  });
});
