import { describe, expect, it } from 'vitest';
import { parseBytesSent, parseProgress } from './rsync.ts';

describe('rsync output', () => {
  it('reads the running total of --info=progress2 lines, and nothing from other lines', () => {
    expect(parseProgress('     12,345,678  45%   98.76MB/s    0:00:01 (xfr#3, to-chk=0/9)')).toEqual({ bytes: 12_345_678, percent: 45 });
    expect(parseProgress('              0   0%    0.00kB/s    0:00:00')).toEqual({ bytes: 0, percent: 0 });
    expect(parseProgress('sending incremental file list')).toBeNull();
    expect(parseProgress('Total bytes sent: 1,234')).toBeNull();
  });

  it('reads the bytes sent from --stats', () => {
    expect(parseBytesSent('Number of files: 3\nTotal bytes sent: 1,234,567\nTotal bytes received: 35\n')).toBe(1_234_567);
    expect(parseBytesSent('nothing here')).toBe(0);
  });
});
