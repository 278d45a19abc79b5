import { describe, expect, it } from 'vitest';
import type { CapacityReport } from '@ferry/protocol';
import { sampleReport } from '../../../../test/fixtures/capacity.ts';
import { HostTable, keepUnchanged, stateForSilence } from './liveness.ts';

const thresholds = { suspectAfterMs: 3000, downAfterMs: 10_000 };
const report = (hostId: string, storage?: CapacityReport['storage']): CapacityReport => sampleReport(hostId, storage ? { storage } : {});

describe('host liveness', () => {
  it('classifies silence', () => {
    expect(stateForSilence(0, thresholds)).toBe('up');
    expect(stateForSilence(3000, thresholds)).toBe('up');
    expect(stateForSilence(3001, thresholds)).toBe('suspect');
    expect(stateForSilence(10_001, thresholds)).toBe('down');
  });

  it('walks up -> suspect -> down -> up with one event per change', () => {
    const table = new HostTable(thresholds);
    // h2 keeps reporting: the scheduler hears the cluster, h1's silence is h1's
    const heard = (at: number) => table.onReport(report('h2'), at);
    heard(0);
    expect(table.onReport(report('h1'), 1000).event).toMatchObject({ from: null, to: 'up' });
    expect(table.onReport(report('h1'), 2000).event).toBeNull();
    heard(4000);
    expect(table.tick(4000)).toEqual([]);
    heard(5000);
    expect(table.tick(5001).map((c) => c.event)).toEqual([{ type: 'host.state', hostId: 'h1', from: 'up', to: 'suspect', at: 5001, silentForMs: 3001 }]);
    expect(table.tick(6000)).toEqual([]);
    heard(12_000);
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
    // nobody heard at all: down only after four down-after periods
    expect(restarted.tick(70_001)).toEqual([]);
    expect(restarted.tick(100_001).map((c) => c.event?.to)).toEqual(['down']);
  });

  it("does not take its own stall for the hosts' silence (a stopped or starved scheduler)", () => {
    const table = new HostTable({ ...thresholds, stallAfterMs: 2000 });
    table.onReport(report('h1'), 0);
    table.onReport(report('h2'), 0);
    expect(table.tick(250)).toEqual([]);
    // 20 s without a tick: stopped; on resume, nobody is down or suspect yet
    expect(table.tick(20_250)).toEqual([]);
    table.onReport(report('h1'), 20_300);
    table.onReport(report('h2'), 20_300);
    expect(table.tick(20_500)).toEqual([]);
    // stopped before its first tick: the count starts at its start
    const early = new HostTable({ ...thresholds, stallAfterMs: 2000 });
    early.load([table.get('h1')!], 21_000);
    expect(early.tick(41_000)).toEqual([]);
  });

  it('declares nobody down while it hears nobody, for four down-after periods (NATS down, or this scheduler cut off)', () => {
    const table = new HostTable(thresholds);
    table.onReport(report('h1'), 0);
    table.onReport(report('h2'), 0);
    expect(table.tick(3001).map((c) => c.event?.to)).toEqual(['suspect', 'suspect']);
    expect(table.tick(15_000)).toEqual([]);
    expect(table.tick(40_000)).toEqual([]);
    expect(table.tick(40_001).map((c) => c.event?.to)).toEqual(['down', 'down']);
  });

  it('keeps a silent host suspect and isolated while a peer sees its storage heartbeat change', () => {
    const table = new HostTable({ ...thresholds, storageStaleMs: 6000 });
    table.onReport(report('h1'), 0);
    const peerSees = (at: number, unchangedForMs: number) => table.onReport(report('h2', { heartbeatOk: true, peers: [{ hostId: 'h1', pool: 'shared', unchangedForMs, fenced: false }] }), at);
    for (let at = 1000; at <= 11_000; at += 1000) {
      peerSees(at, 300);
      table.tick(at);
    }
    expect(table.get('h1')).toMatchObject({ state: 'suspect', isolated: true });
    // its heartbeat stops too: once the peer has seen it unchanged for storageStaleMs, down
    let at = 11_000;
    for (let stale = 1000; stale <= 7000; stale += 1000) {
      at += 1000;
      peerSees(at, stale);
      table.tick(at);
    }
    expect(table.get('h1')).toMatchObject({ state: 'down' });
    // a peer's word about a host that fenced is no sign of life
    const fencedTable = new HostTable({ ...thresholds, storageStaleMs: 6000 });
    fencedTable.onReport(report('h1'), 0);
    fencedTable.onReport(report('h2', { heartbeatOk: true, peers: [{ hostId: 'h1', pool: 'shared', unchangedForMs: 0, fenced: true }] }), 10_500);
    expect(fencedTable.tick(10_501).map((c) => c.event?.to)).toEqual(['down']);
  });
});

describe('keepUnchanged (the host table keeps a host’s unchanged arrays from report to report)', () => {
  it('reuses the previous CPU flags, networks and templates when equal, and takes the new ones when not', () => {
    const first = sampleReport('h1');
    const same = sampleReport('h1', { seq: 2 });
    const kept = keepUnchanged(first, same);
    expect(kept.seq).toBe(2);
    expect(kept.cpu.flags).toBe(first.cpu.flags);
    expect(kept.networks).toBe(first.networks);
    expect(kept.templates).toBe(first.templates);
    const changed = sampleReport('h1', { seq: 3, cpu: { ...first.cpu, flags: [...first.cpu.flags, 'avx512f'] }, templates: [] });
    const next = keepUnchanged(first, changed);
    expect(next.cpu.flags).toBe(changed.cpu.flags);
    expect(next.templates).toBe(changed.templates);
    expect(next.networks).toBe(first.networks);
    // the table stores what it kept
    const table = new HostTable({ suspectAfterMs: 3000, downAfterMs: 7000 });
    table.onReport(first, 1000);
    expect(table.onReport(same, 2000).record.capacity.cpu.flags).toBe(first.cpu.flags);
  });

  it('keeps each pool’s probe while it is equal, with the new free space, and takes a changed probe', () => {
    const pools = (token: string, freeBytes: number) => [
      { id: 'local', path: '/p', shared: false, totalBytes: 2 ** 40, freeBytes },
      { id: 'shared', path: '/s', shared: true, totalBytes: 2 ** 42, freeBytes, probe: { token, sees: [{ hostId: 'h2', token: 'h2-token-h2-token' }] } },
    ];
    const first = sampleReport('h1', { pools: pools('h1-token-h1-token', 100) });
    const kept = keepUnchanged(first, sampleReport('h1', { pools: pools('h1-token-h1-token', 50) }));
    expect(kept.pools[1]!.probe).toBe(first.pools[1]!.probe);
    expect(kept.pools.map((p) => p.freeBytes)).toEqual([50, 50]);
    const changed = sampleReport('h1', { pools: pools('h1-other-token-xx', 50) });
    expect(keepUnchanged(first, changed).pools[1]!.probe).toBe(changed.pools[1]!.probe);
  });
});
