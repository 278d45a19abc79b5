import { describe, expect, it } from 'vitest';
import type { CapacityReport } from '@ferry/protocol';
import { HostTable, stateForSilence } from './liveness.ts';

const thresholds = { suspectAfterMs: 3000, downAfterMs: 10_000 };
const report = (hostId: string) => ({ hostId }) as CapacityReport;

describe('host liveness', () => {
  it('classifies silence', () => {
    expect(stateForSilence(0, thresholds)).toBe('up');
    expect(stateForSilence(3000, thresholds)).toBe('up');
    expect(stateForSilence(3001, thresholds)).toBe('suspect');
    expect(stateForSilence(10_001, thresholds)).toBe('down');
  });

  it('walks up -> suspect -> down -> up with one event per change', () => {
    const table = new HostTable(thresholds);
    expect(table.onReport(report('h1'), 1000).event).toMatchObject({ from: null, to: 'up' });
    expect(table.onReport(report('h1'), 2000).event).toBeNull();
    expect(table.tick(4000)).toEqual([]);
    expect(table.tick(5001).map((c) => c.event)).toEqual([
      { type: 'host.state', hostId: 'h1', from: 'up', to: 'suspect', at: 5001, silentForMs: 3001 },
    ]);
    expect(table.tick(6000)).toEqual([]);
    const down = table.tick(12_001);
    expect(down.map((c) => [c.event?.from, c.event?.to, c.record.stateSince])).toEqual([['suspect', 'down', 12_001]]);
    const back = table.onReport(report('h1'), 20_000);
    expect(back.event).toMatchObject({ from: 'down', to: 'up', silentForMs: 18_000 });
    expect(back.record).toMatchObject({ state: 'up', stateSince: 20_000, firstSeenAt: 1000, lastReportAt: 20_000 });
  });

  it('gives restored hosts a full grace period after the scheduler itself restarts', () => {
    const table = new HostTable(thresholds);
    table.onReport(report('h1'), 0);
    const [record] = table.all();
    const restarted = new HostTable(thresholds);
    restarted.load([record!], 60_000);
    expect(restarted.tick(60_001)).toEqual([]);
    expect(restarted.tick(63_001).map((c) => c.event?.to)).toEqual(['suspect']);
    expect(restarted.tick(70_001).map((c) => c.event?.to)).toEqual(['down']);
  });
});
