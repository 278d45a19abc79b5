import { describe, expect, it } from 'vitest';
import {
  analyzeTickLog,
  disagreements,
  duplicatesIn,
  migrationProcesses,
  reportedByFailovers,
  processCanRun,
  runningHosts,
  stateCanRun,
  statState,
  unaccounted,
  type RecordView,
  type Sample,
} from './invariants-analysis.ts';

const log = (...runs: Array<[startUs: number, count: number]>) => runs.flatMap(([start, count]) => Array.from({ length: count }, (_, i) => `${start + i * 10_000} ${i + 1}`)).join('\n') + '\n';

describe('tick log analysis', () => {
  it('one run, then a second after the first stopped: two runs, no overlap', () => {
    const { runs, overlaps } = analyzeTickLog(log([1_000_000, 50], [3_000_000, 20]));
    expect(overlaps).toEqual([]);
    expect(runs).toEqual([
      { from: 1_000_000, to: 1_490_000, ticks: 50 },
      { from: 3_000_000, to: 3_190_000, ticks: 20 },
    ]);
  });

  it('two writers interleaving their lines: an overlap', () => {
    const a = Array.from({ length: 10 }, (_, i) => [1_000_000 + i * 10_000, i + 1] as const);
    const b = Array.from({ length: 10 }, (_, i) => [1_005_000 + i * 10_000, i + 101] as const);
    const text = a
      .flatMap((x, i) => [x, b[i]!])
      .map(([ts, tick]) => `${ts} ${tick}`)
      .join('\n');
    expect(analyzeTickLog(text).overlaps.length).toBeGreaterThan(5);
  });

  it('a second run that starts before the previous line: an overlap (a restart elsewhere while the old copy still wrote)', () => {
    const text = ['1000 1', '2000 2', '3000 3', '2500 1', '3500 2'].join('\n');
    expect(analyzeTickLog(text).overlaps).toEqual(['a run starting at 2500 began before the previous line (3000)']);
  });

  it('ignores a torn last line and an empty log', () => {
    expect(analyzeTickLog('1000 1\n2000 2\n30').overlaps).toEqual([]);
    expect(analyzeTickLog('')).toEqual({ runs: [], overlaps: [] });
  });
});

describe('samples of the lab hosts', () => {
  const sample = (copies: Array<[host: string, workload: string, running: boolean]>): Sample => ({
    at: 1,
    copies: copies.map(([host, workload, running]) => ({ host, workload, running, pids: [1] })),
  });

  it('a workload running on two hosts at once is a duplicate; a frozen or traced copy next to a running one is not', () => {
    expect(
      duplicatesIn(
        sample([
          ['h1', 'w', true],
          ['h2', 'w', true],
          ['h3', 'v', true],
        ]),
      ),
    ).toEqual([{ at: 1, workload: 'w', hosts: ['h1', 'h2'] }]);
    expect(
      duplicatesIn(
        sample([
          ['h1', 'w', false],
          ['h2', 'w', true],
        ]),
      ),
    ).toEqual([]);
    expect(
      runningHosts(
        sample([
          ['h1', 'w', false],
          ['h2', 'w', true],
          ['h3', 'v', true],
        ]),
      ),
    ).toEqual(
      new Map([
        ['w', ['h2']],
        ['v', ['h3']],
      ]),
    );
  });

  it('process states: stopped, traced and dead processes do not run', () => {
    expect(['R', 'S', 'D', 'I'].map(stateCanRun)).toEqual([true, true, true, true]);
    expect(['T', 't', 'Z', 'X'].map(stateCanRun)).toEqual([false, false, false, false]);
    expect(statState('1234 (ferry (work) load) t 1 2 3')).toBe('t');
    expect(statState('garbage')).toBeNull();
  });

  it('a dying process (SIGKILL pending, or in do_exit) does not run, whatever its state letter', () => {
    const stat = (state: string, flags: number) => `77 (ferry (work) load) ${state} 1 77 77 0 -1 ${flags} 0 0`;
    const status = (sigPnd: string, shdPnd: string) => `Name:\tworkload\nState:\tR (running)\nSigPnd:\t${sigPnd}\nShdPnd:\t${shdPnd}\n`;
    expect(processCanRun(stat('R', 0x400000), status('0000000000000000', '0000000000000000'))).toBe(true);
    // SIGTERM (bit 14) and SIGUSR1 pending change nothing; SIGKILL (bit 8) does, per thread or shared
    expect(processCanRun(stat('R', 0x400000), status('0000000000004200', '0000000000000000'))).toBe(true);
    expect(processCanRun(stat('R', 0x400000), status('0000000000000100', '0000000000000000'))).toBe(false);
    expect(processCanRun(stat('S', 0x400000), status('0000000000000000', '0000000000000100'))).toBe(false);
    expect(processCanRun(stat('R', 0x400004), status('0000000000000000', '0000000000000000'))).toBe(false);
    expect(processCanRun(stat('t', 0), status('0000000000000000', '0000000000000000'))).toBe(false);
    expect(processCanRun('', '')).toBe(false);
  });
});

describe('records against reality', () => {
  const rec = (id: string, over: Partial<RecordView> = {}): RecordView => ({
    id,
    hostId: 'h1',
    phase: 'running',
    epoch: 2,
    error: null,
    observed: { state: 'running', epoch: 2 },
    ...over,
  });

  it('(b) every workload known before is running or reported with a reason', () => {
    const after = [rec('a'), rec('b', { phase: 'lost', error: { code: 'HOST_REMOVED', message: 'x' } }), rec('c', { phase: 'stopped' }), rec('d', { phase: 'failed' })];
    expect(unaccounted(['a', 'b', 'c', 'd', 'e', 'f'], after, { gone: ['f'] })).toEqual([
      'c: stopped, neither running nor reported with a reason',
      'd: failed, neither running nor reported with a reason',
      'e: known before, no record after',
    ]);
    expect(unaccounted(['c'], after, { stopped: ['c'] })).toEqual([]);
  });

  it('(c) a running record runs on its host only, at its epoch; other records run nowhere; nothing runs unrecorded', () => {
    expect(disagreements([rec('a'), rec('b', { phase: 'stopped', observed: null })], new Map([['a', ['h1']]]))).toEqual([]);
    expect(
      disagreements(
        [rec('a'), rec('b', { phase: 'stopped' }), rec('c', { observed: { state: 'running', epoch: 1 } }), rec('d', { observed: null })],
        new Map([
          ['a', ['h2']],
          ['b', ['h1']],
          ['c', ['h1']],
          ['d', ['h1']],
          ['x', ['h3']],
        ]),
      ),
    ).toEqual([
      'a: record says running on h1, runs on [h2]',
      'b: record says stopped, runs on [h1]',
      'c: record at epoch 2, its host reports epoch 1',
      'd: record says running, its host reports nothing',
      'x: runs on [h3] without a record',
    ]);
  });
});

describe('workloads a failover reported', () => {
  const failover = {
    hostId: 'h1',
    restarts: [
      { workload: 'a', status: 'restarted', reason: null },
      { workload: 'b', status: 'unplaceable', reason: 'MEMORY_INSUFFICIENT: 2 hosts' },
    ],
    unrecoverable: [{ workload: 'c', reason: 'its root filesystem is on local pool local of h1' }],
    unprotected: ['d'],
  };

  it('counts only what a failover of a host that is down did not restart', () => {
    expect([...reportedByFailovers([failover], new Set(['h1'])).keys()]).toEqual(['b', 'c', 'd']);
    expect(reportedByFailovers([failover], new Set())).toEqual(new Map());
  });

  it('a reported workload is accounted for (b) and must run nowhere (c)', () => {
    const c: RecordView = { id: 'c', hostId: 'h1', phase: 'running', epoch: 1, error: null, observed: null, reported: 'unrecoverable: local pool' };
    expect(unaccounted(['c'], [c])).toEqual([]);
    expect(disagreements([c], new Map())).toEqual([]);
    expect(disagreements([c], new Map([['c', ['h2']]]))).toEqual(['c: reported as not running (unrecoverable: local pool), runs on [h2]']);
  });
});

describe('processes a migration started', () => {
  const lab = '/tmp/ferry-lab-test-x/lab-ab12';
  const p = (pid: number, ...cmdline: string[]) => ({ pid, cmdline });

  it('finds rsync daemons and pushes, CRIU page servers and lazy-pages daemons and lazy checkpoints of this lab only', () => {
    const processes = [
      p(1, 'rsync', '--daemon', '--no-detach', '--config', `${lab}/hosts/h2/data/migrations/m-w-abc/rsyncd.conf`),
      p(2, 'rsync', '-aHAX', `${lab}/hosts/h1/pool/containers/w/rootfs/`, 'rsync://ferry@10.250.3.12:4000/ct/rootfs/'),
      p(3, '/opt/ferry/criu/sbin/criu', 'page-server', '--images-dir', `${lab}/hosts/h2/pool/containers/w/ckpt-m-w-abc`),
      p(4, '/opt/ferry/criu/sbin/criu', 'lazy-pages', '--work-dir', `${lab}/hosts/h2/data/migrations/m-w-abc/restore-1`),
      p(5, 'runc', '--root', `${lab}/hosts/h1/data/runc`, 'checkpoint', '--lazy-pages', '--image-path', `${lab}/shared-pool/containers/w/ckpt-m-w-abc`, 'w'),
      // not migrations: another lab's daemon, a container's own processes, runc listing, the agent
      p(6, 'rsync', '--daemon', '--config', '/tmp/ferry-lab-test-y/lab-cd34/hosts/h2/data/migrations/m-w-abc/rsyncd.conf'),
      p(7, '/usr/bin/ferry-workload', '--tick-log', '/var/log/ticks.log'),
      p(8, 'runc', '--root', `${lab}/hosts/h1/data/runc`, 'list'),
      p(9, 'node', '--import', 'tsx', 'services/agent/src/main.ts', '--config', `${lab}/hosts/h1/agent.json`),
    ];
    expect(migrationProcesses(processes, lab).map((x) => x.pid)).toEqual([1, 2, 3, 4, 5]);
  });
});
