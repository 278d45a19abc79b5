import { describe, expect, it } from 'vitest';
import { parseCpuInfo, parseLoadAvg, parseMemInfo } from './procfs.ts';

const cpuinfo = `processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags\t\t: fpu vme sse sse2 avx avx2 avx512f

processor\t: 1
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 85
model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags\t\t: fpu vme sse sse2 avx avx2

`;

describe('procfs parsers', () => {
  it('reads CPU identity and keeps only flags every processor has', () => {
    expect(parseCpuInfo(cpuinfo)).toEqual({
      vendor: 'GenuineIntel',
      family: 6,
      model: 85,
      modelName: 'Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz',
      flags: ['avx', 'avx2', 'fpu', 'sse', 'sse2', 'vme'],
      count: 2,
    });
  });

  it('refuses a cpuinfo without processors', () => {
    expect(() => parseCpuInfo('garbage')).toThrow(/no processor/);
  });

  it('reads memory in bytes', () => {
    expect(parseMemInfo('MemTotal:       24684092 kB\nMemFree:        1 kB\nMemAvailable:   24370556 kB\n')).toEqual({
      totalBytes: 24684092 * 1024,
      availableBytes: 24370556 * 1024,
    });
    expect(() => parseMemInfo('MemTotal: 1 kB\n')).toThrow(/MemAvailable/);
  });

  it('reads load averages', () => {
    expect(parseLoadAvg('0.19 0.15 0.06 1/80 3559\n')).toEqual({ one: 0.19, five: 0.15, fifteen: 0.06 });
    expect(() => parseLoadAvg('x y z')).toThrow();
  });
});
