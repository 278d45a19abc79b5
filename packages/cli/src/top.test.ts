import { describe, expect, it } from 'vitest';
import { WorkloadSpec, type WorkloadView } from '@ferry/protocol';
import { sampleContainer, sampleWorkloadRecord } from '../../../test/fixtures/capacity.ts';
import { sortTop, topRow, topTable } from './top.ts';

const view = (id: string, host: string, usage: { cpuPercent: number; memoryBytes: number; pids: number; diskBytes: number | null } | null): WorkloadView => {
  const spec = WorkloadSpec.parse({ id, template: 'busybox', command: ['/bin/sh'], resources: { vcpus: 0.5, memoryMiB: 256, diskMiB: 64 }, pool: 'local' });
  const base = sampleContainer(id);
  return {
    ...sampleWorkloadRecord(spec, host),
    observed: usage ? { ...base, usage: { ...base.usage!, ...usage, memoryLimitBytes: 256 * 2 ** 20 } } : null,
  } as WorkloadView;
};

describe('ferry top', () => {
  const rows = [
    view('a', 'h1', { cpuPercent: 5, memoryBytes: 30 * 2 ** 20, pids: 3, diskBytes: 10 * 2 ** 20 }),
    view('b', 'h2', { cpuPercent: 50, memoryBytes: 10 * 2 ** 20, pids: 9, diskBytes: null }),
    view('c', 'h1', null),
  ].map(topRow);

  it('sorts busiest first, rows without figures last, names a-z', () => {
    expect(sortTop(rows, 'cpu').map((r) => r.id)).toEqual(['b', 'a', 'c']);
    expect(sortTop(rows, 'memory').map((r) => r.id)).toEqual(['a', 'b', 'c']);
    expect(sortTop(rows, 'pids').map((r) => r.id)).toEqual(['b', 'a', 'c']);
    expect(sortTop(rows, 'disk').map((r) => r.id)).toEqual(['a', 'b', 'c']);
    expect(sortTop(rows, 'host').map((r) => r.id)).toEqual(['a', 'c', 'b']);
  });

  it('shows usage against limits, a dash where the host reports none, and totals', () => {
    const text = topTable(sortTop(rows, 'cpu'));
    const [header, b, a, c, total] = text.split('\n');
    expect(header).toMatch(/^WORKLOAD +HOST +STATE +CPU% +MEMORY +PIDS +DISK$/);
    expect(b).toMatch(/^b +h2 +running +50\.0 \/ 50 +10 MiB \/ 256 MiB +9 \/ 1024 +— \/ 64 MiB$/);
    expect(a).toMatch(/^a +h1 +running +5\.0 \/ 50 +30 MiB \/ 256 MiB +3 \/ 1024 +10 MiB \/ 64 MiB$/);
    expect(c).toMatch(/^c +h1 +\S+ +— +— \/ 256 MiB +— \/ 1024 +— \/ 64 MiB$/);
    expect(total).toBe('3 workloads: cpu 55.0%, memory 40 MiB, pids 12, disk 10 MiB');
    expect(topTable([])).toBe('(no workloads)');
  });
});
