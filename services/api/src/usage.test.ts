import { describe, expect, it } from 'vitest';
import type { MigrationRecord } from '@ferry/protocol';
import { hostsOfTheHour, mergeSeries } from './usage.ts';

const now = 10 * 3_600_000;
const move = (source: string, destination: string, finishedAt: number, state: MigrationRecord['state'] = 'completed') =>
  ({ source, destination, state, createdAt: finishedAt - 5_000, finishedAt }) as MigrationRecord;

describe('the hosts of a workload’s hour', () => {
  it('are those its completed migrations of the hour left and reached, then where it is, oldest first', () => {
    expect(hostsOfTheHour('h3', [move('h2', 'h3', now - 60_000), move('h1', 'h2', now - 1_800_000)], now)).toEqual(['h1', 'h2', 'h3']);
  });

  it('leave out older migrations and those that did not complete', () => {
    expect(hostsOfTheHour('h1', [move('h9', 'h1', now - 2 * 3_600_000), move('h1', 'h5', now - 60_000, 'rolled-back')], now)).toEqual(['h1']);
    expect(hostsOfTheHour(null, [], now)).toEqual([]);
  });
});

describe('a workload’s series', () => {
  it('is every host’s samples in time order, each naming its host', () => {
    const s = (at: number) => ({ at, cpuPercent: 1, memoryBytes: 1, diskBytes: null, pids: 1 });
    expect(
      mergeSeries([
        { hostId: 'h2', samples: [s(3), s(4)] },
        { hostId: 'h1', samples: [s(1), s(2)] },
      ]).map((x) => `${x.hostId}@${x.at}`),
    ).toEqual(['h1@1', 'h1@2', 'h2@3', 'h2@4']);
  });
});
