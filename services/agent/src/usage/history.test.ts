import { describe, expect, it } from 'vitest';
import type { ContainerStatus } from '@ferry/protocol';
import { UsageHistory } from './history.ts';

const GiB = 2 ** 30;
const container = (id: string, cpuPercent: number, memoryBytes: number): ContainerStatus => ({
  id,
  state: 'running',
  epoch: 1,
  pid: 10,
  startedAt: 0,
  exit: null,
  usage: { memoryBytes, memoryLimitBytes: GiB, cpuNanos: 0, cpuPercent, diskBytes: 1000, pids: 3 },
});
const report = (sentAt: number, containers: ContainerStatus[]) => ({ sentAt, memory: { totalBytes: 8 * GiB, availableBytes: 6 * GiB }, containers });

describe('UsageHistory', () => {
  it('keeps one sample a minute and answers the latest report too', () => {
    const h = new UsageHistory(60_000, 60);
    for (let s = 0; s < 150; s++) h.record(report(s * 1000, [container('a', s, 1000 + s)]));
    const reply = h.reply('h1', 'a');
    // kept at 0, 60 s and 120 s; the latest (149 s) appended
    expect(reply.workload!.map((x) => x.at)).toEqual([0, 60_000, 120_000, 149_000]);
    expect(reply.workload!.map((x) => x.cpuPercent)).toEqual([0, 60, 120, 149]);
    expect(reply.host.at(-1)).toMatchObject({ at: 149_000, cpuPercent: 149, memoryBytes: 2 * GiB, diskBytes: 1000, pids: 3 });
    expect(reply.sampleMs).toBe(60_000);
  });

  it('is a ring: an hour at most, the oldest dropped', () => {
    const h = new UsageHistory(1000, 5);
    for (let s = 0; s < 20; s++) h.record(report(s * 1000, [container('a', 1, 1)]));
    expect(h.reply('h1', 'a').workload!.map((x) => x.at)).toEqual([15_000, 16_000, 17_000, 18_000, 19_000]);
    expect(h.reply('h1').host).toHaveLength(5);
  });

  it('sums its containers for the host, and has nothing for a container it never ran', () => {
    const h = new UsageHistory();
    h.record(report(0, [container('a', 10, 100), container('b', 30.5, 200)]));
    const reply = h.reply('h1', 'zzz');
    expect(reply.workload).toBeNull();
    expect(reply.host).toEqual([{ at: 0, cpuPercent: 40.5, memoryBytes: 2 * GiB, diskBytes: 2000, pids: 6 }]);
    expect(h.reply('h1').workload).toBeNull();
  });

  it('keeps a container’s first sample when it appears, whenever in the minute', () => {
    const h = new UsageHistory(60_000, 60);
    h.record(report(0, []));
    h.record(report(5_000, [container('late', 7, 1)]));
    h.record(report(6_000, []));
    // gone from the latest report: what was kept remains
    expect(h.reply('h1', 'late').workload).toEqual([{ at: 5_000, cpuPercent: 7, memoryBytes: 1, diskBytes: 1000, pids: 3 }]);
  });

  it('forgets a container gone for longer than the hour', () => {
    const h = new UsageHistory(1000, 3);
    h.record(report(0, [container('old', 1, 1)]));
    for (let s = 1; s < 10; s++) h.record(report(s * 1000, []));
    expect(h.reply('h1', 'old').workload).toBeNull();
  });
});
