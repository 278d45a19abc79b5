import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import type { NatsConnection } from 'nats';
import { MigrationEvent, subjects, type FailoverRecord, type HostView, type MigrationPhase, type MigrationRecord, type MigrationStrategy, type WorkloadSpecInput } from '@ferry/protocol';
import type { ManagedProcess } from '@ferry/deploy';
import { eventually } from './helpers/cluster.ts';
import { InvariantChecker, runsOf } from './helpers/invariants.ts';
import { PROD, skipLab, type LabCluster } from './helpers/lab.ts';
import { labApi, talk, workloadStats } from './helpers/workload.ts';
import { MATRIX_LOCK_MS, printMatrix, startFaultMatrix, type FaultMatrixLab } from './helpers/fault-matrix.ts';

/**
 * The fault matrix (issue 13, part 5): faults of the control plane, the link and the destination,
 * each injected at one phase of a live migration of a small workload (16 MiB of memory), with an
 * HA bystander on a third host that must not be touched. Every cell passes the invariant checker
 * (test/helpers/invariants.ts): never two copies at a sampled moment, every workload accounted
 * for, records and reality agreeing after recovery, nothing of the migration left behind. What
 * each fault did is printed as a table at the end (docs/migration.md, "What each fault does to a
 * migration").
 *
 * The phase is picked the way the other lab tests pick it: the scheduler's own phase events on
 * `ferry.events.migrations.<id>` ("<phase> started"), heard by an observer connection; the fault
 * is injected when the phase starts, i.e. while its agent request is in flight.
 */

const LOCK_MS = MATRIX_LOCK_MS;
const HOSTS = ['h1', 'h2', 'h3'];
const BYSTANDER = { id: 'bystander', address: '10.77.0.190' };

type Outcome = 'completed' | 'rolled-back' | 'refused';

interface CellContext {
  t: LabCluster;
  source: string;
  destination: string;
  workloadId: string;
  /** set once the migration was accepted (null for a refused one) */
  migrationId: string | null;
}

interface Cell {
  fault: string;
  /** the phase whose start triggers the fault; null: before the migration is asked for */
  phase: MigrationPhase | null;
  pool: 'shared' | 'local';
  /** MiB of random data in the root filesystem (a local pool's presync then takes a while) */
  ballastMiB?: number;
  strategy?: MigrationStrategy;
  /** before the migration (the fault, for phase null) */
  setup?(c: CellContext): Promise<void>;
  /** the fault, when the phase starts (awaited before the cell's checks) */
  inject?(c: CellContext, migrationId: string): Promise<void>;
  /** after the migration ended: undo what setup did */
  teardown?(c: CellContext): Promise<void>;
  outcomes: Outcome[];
  /** how long the migration may take to end (default 60 s) */
  endWithinMs?: number;
  /** extra checks of the cell, with every event of its migration */
  verify?(c: CellContext, m: MigrationRecord | null, events: MigrationEvent[]): Promise<string | void>;
  /**
   * a product bug this cell shows and that is not fixed yet: the cell is expected to fail
   * (vitest `it.fails`) — once the bug is fixed it passes, `it.fails` fails, and this goes
   */
  knownBug?: string;
}

interface Row {
  fault: string;
  phase: string;
  outcome: string;
  detail: string;
  seconds: number;
}

describe.skipIf(skipLab())('fault matrix: faults × migration phases, with an HA bystander (real NATS, Redis, agents, CRIU)', () => {
  let t: LabCluster;
  let nc: NatsConnection;
  const rows: Row[] = [];
  const mounts = new Set<string>();

  let lab: FaultMatrixLab;
  beforeAll(async () => {
    lab = await startFaultMatrix(HOSTS, { ...BYSTANDER, host: 'h3' }, 'h1');
    ({ t, nc } = lab);
  }, 180_000);

  afterAll(async () => {
    printMatrix(
      'fault matrix',
      ['fault', 'phase', 'outcome', 'what happened', 's'],
      rows.map((r) => [r.fault, r.phase, r.outcome, r.detail, r.seconds.toFixed(1)]),
    );
    for (const dir of mounts) await execa('umount', ['-l', dir], { reject: false });
    await lab?.close();
  });

  const { api, get, migration, running, history, finished } = labApi(() => t);
  const live = (name: string): ManagedProcess => lab.live(name);
  const schedulers = () => lab.schedulers();
  const other = (host: string) => (host === 'h1' ? 'h2' : 'h1');

  /** Drops every packet between two lab hosts' management addresses, in `host`'s namespace (nftables), or lets them through again. */
  const cutBetween = async (host: string, peer: string, cut: boolean) => {
    const ns = t.lab.host(host).netns;
    const address = t.lab.host(peer).address;
    if (cut) {
      const rules = `table inet ferry_fault {\n chain in { type filter hook input priority -300; ip saddr ${address} drop; }\n chain out { type filter hook output priority -300; ip daddr ${address} drop; }\n}\n`;
      const r = await execa('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], { input: rules, reject: false });
      if (r.exitCode !== 0) throw new Error(`nft in ${ns}: ${r.stderr}`);
    } else {
      await execa('ip', ['netns', 'exec', ns, 'nft', 'delete', 'table', 'inet', 'ferry_fault'], { reject: false });
    }
  };
  const poolDir = (host: string) => join(t.lab.host(host).dir, 'pool');
  /** A small tmpfs over a host's local pool: a disk that fills up for real (ENOSPC). */
  const smallDisk = async (host: string, mib: number) => {
    const dir = poolDir(host);
    await execa('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'ferry-fault-disk', dir]);
    mounts.add(dir);
    await eventually(
      `${host}'s local pool reported at ${mib} MiB`,
      async () => {
        const h = await t.cluster.get<HostView>(`/v1/hosts/${host}`);
        const pool = h.capacity.pools.find((p) => p.id === 'local');
        return pool && pool.totalBytes <= mib * 2 ** 20 ? pool : null;
      },
      15_000,
    );
  };
  const unmountDisk = async (host: string) => {
    const dir = poolDir(host);
    const r = await execa('umount', [dir], { reject: false });
    if (r.exitCode !== 0) await execa('umount', ['-l', dir], { reject: false });
    mounts.delete(dir);
  };

  /** The link between the two agents cut for 5 s when `phase` starts (local pool: real bytes to move). */
  const linkCut = (phase: MigrationPhase, ballastMiB: number): Cell => ({
    fault: 'cut the link between the two agents for 5 s (nftables drop, NATS up)',
    phase,
    pool: 'local',
    ballastMiB,
    inject: async (c) => {
      await cutBetween(c.destination, c.source, true);
      await sleep(5_000);
      await cutBetween(c.destination, c.source, false);
    },
    teardown: async (c) => cutBetween(c.destination, c.source, false),
    outcomes: ['completed', 'rolled-back'],
  });

  /**
   * kill -9 the lab's redis-server and wait for the supervisor's new one to answer; if it does
   * not within 30 s, the cell fails with what Redis and the supervisor logged (one CI run saw a
   * Redis that did not answer again after a second kill: this is how it would be told apart).
   */
  async function killRedis(): Promise<void> {
    const killed = live('redis');
    process.kill(killed.pid, 'SIGKILL');
    const deadline = Date.now() + 30_000;
    for (;;) {
      const admin = t.cluster.redisAdmin({ lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 });
      admin.on('error', () => undefined);
      const answered = await admin
        .connect()
        .then(
          () => admin.ping(),
          () => null,
        )
        .catch(() => null);
      admin.disconnect();
      if (answered === 'PONG') return;
      if (Date.now() > deadline) {
        const tail = (file: string) => readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
        const running = t.cluster.supervisor
          .list()
          .filter((p) => p.name === 'redis')
          .map((p) => `pid ${p.pid} exited=${p.exited}`);
        throw new Error(
          `Redis did not answer within 30 s of its kill (${running.join(', ')}).\nredis.log:\n${tail(join(t.stateDir, 'redis', 'redis.log'))}\nsupervisor's redis log:\n${tail(killed.logFile)}`,
        );
      }
      await sleep(250);
    }
  }

  const cells: Cell[] = [
    // NATS killed while a phase's request is in flight: the request or its answer is lost with the
    // server, and the scheduler sends it again once reconnected (the agent joins a copy to the run
    // still going) — before, each cost the phase's whole timeout (30 s at prepare, 120 s frozen at
    // freeze or restore; docs/migration.md)
    ...(['prepare', 'freeze', 'restore'] as const).map((phase): Cell => ({
      fault: 'kill -9 NATS (supervisor restarts it)',
      phase,
      pool: 'shared',
      endWithinMs: 30_000,
      inject: async () => void process.kill(live('nats').pid, 'SIGKILL'),
      outcomes: ['completed', 'rolled-back'],
    })),
    {
      fault: `SIGSTOP the driving scheduler ${(4 * LOCK_MS) / 1000} s (job lock ${LOCK_MS / 1000} s), a second replica running, then SIGCONT`,
      phase: 'freeze',
      pool: 'shared',
      inject: async (_c, id) => {
        const driver = schedulers().find((s) => readFileSync(s.logFile, 'utf8').includes(id));
        if (!driver) throw new Error(`no scheduler log names ${id}`);
        process.kill(driver.pid, 'SIGSTOP');
        // BullMQ moves a job back to the queue at the second stalled check without a lock (2 × the
        // lock here), and the workload lock lapses after LOCK_MS: 4 × LOCK_MS lets the other
        // replica take over for certain
        await sleep(4 * LOCK_MS);
        process.kill(driver.pid, 'SIGCONT');
      },
      outcomes: ['completed', 'rolled-back'],
      verify: async (_c, m, events) => {
        // one driver: one end, and nothing published for the migration after it
        await sleep(3_000);
        const ends = events.filter((e) => e.type === 'migration.finished');
        expect(ends.length, `finished events: ${JSON.stringify(ends)}`).toBe(1);
        const after = events.slice(events.indexOf(ends[0]!) + 1);
        expect(
          after.map((e) => `${e.phase} ${e.status}`),
          'events after the end',
        ).toEqual([]);
        const pickedUp = schedulers().map(
          (s) =>
            readFileSync(s.logFile, 'utf8')
              .split('\n')
              .filter((l) => l.includes(m!.id) && l.includes('migration picked up')).length,
        );
        return `picked up ${pickedUp.join(' + ')} times by the two replicas; ${events.filter((e) => e.status === 'started').length} phase starts`;
      },
    },
    linkCut('presync', 100),
    linkCut('transfer', 20),
    {
      fault: 'kill -9 the destination agent (restarted 1 s later)',
      phase: 'restore',
      pool: 'shared',
      // the restore request died with the agent: the scheduler notices the agent's new run in its
      // reports (AGENT_RESTARTED) rather than waiting out the restore's 120 s timeout
      endWithinMs: 30_000,
      inject: async (c) => {
        await t.cluster.supervisor.stop(t.cluster.agent(c.destination)!, 0);
        await sleep(1_000);
        t.cluster.startAgent(c.destination);
      },
      outcomes: ['completed', 'rolled-back'],
    },
    {
      fault: "the destination's disk full before the migration (16 MiB tmpfs pool)",
      phase: null,
      pool: 'local',
      setup: async (c) => smallDisk(c.destination, 16),
      teardown: async (c) => unmountDisk(c.destination),
      outcomes: ['refused'],
    },
    {
      fault: "the destination's disk fills up during the presync (256 MiB tmpfs pool, filled up by dd)",
      phase: 'presync',
      pool: 'local',
      ballastMiB: 60,
      setup: async (c) => smallDisk(c.destination, 256),
      inject: async (c) => {
        // every byte the presync's rsync has not taken yet: dd until ENOSPC
        const r = await execa('dd', ['if=/dev/zero', `of=${join(poolDir(c.destination), 'filler')}`, 'bs=1M'], { reject: false });
        if (!/No space left/.test(r.stderr)) throw new Error(`filling ${c.destination}'s pool: ${r.stderr}`);
      },
      teardown: async (c) => {
        await execa('rm', ['-f', join(poolDir(c.destination), 'filler')]);
        await unmountDisk(c.destination);
      },
      outcomes: ['rolled-back'],
    },
    // last: a Redis that loses what it had (see docs/migration.md) leaves stuck migrations that
    // every later cell's invariant check would see
    {
      fault: 'kill -9 Redis (supervisor restarts it)',
      phase: 'presync',
      pool: 'shared',
      inject: killRedis,
      outcomes: ['completed', 'rolled-back'],
      endWithinMs: 60_000,
    },
    {
      fault: 'kill -9 Redis (supervisor restarts it)',
      phase: 'commit',
      pool: 'shared',
      inject: killRedis,
      outcomes: ['completed', 'rolled-back'],
      endWithinMs: 60_000,
    },
  ];

  // FERRY_FAULTS=<regular expression>: only the cells whose name matches (a developer's shortcut)
  const only = process.env.FERRY_FAULTS ? new RegExp(process.env.FERRY_FAULTS) : null;
  const named = cells.map((cell, index) => [`${cell.fault} @ ${cell.phase ?? 'before the migration'}`, cell, index] as const);
  const runCell = async (cell: Cell, index: number): Promise<void> => {
    const started = Date.now();
    const id = `fault-${index}`;
    const address = `10.77.0.${200 + index}`;
    const command =
      cell.ballastMiB !== undefined
        ? ['/bin/sh', '-c', `dd if=/dev/urandom of=/ballast bs=1M count=${cell.ballastMiB} 2>/dev/null; exec /usr/bin/ferry-workload --mem 16 --port 7000`]
        : ['/usr/bin/ferry-workload', '--mem', '16', '--port', '7000', '--tick-log', '/var/log/ticks.log'];
    const spec: WorkloadSpecInput = {
      id,
      template: 'busybox',
      command,
      resources: { vcpus: 0.25, memoryMiB: 64, diskMiB: cell.ballastMiB !== undefined ? 128 : 64 },
      networks: [{ network: PROD.name, address }],
      pool: cell.pool,
      ha: { enabled: cell.pool === 'shared', priority: 3 },
      placement: { hosts: ['h1', 'h2'] },
    };
    const placed = await running(spec, 'h3');
    await eventually(`${address} answering`, async () => /^\d+$/.test(await talk(t.lab, 'h3', address, 'get')), 30_000);
    for (let i = 0; i < 3; i++) await talk(t.lab, 'h3', address, 'inc');
    const source = placed.hostId!;
    const c: CellContext = { t, source, destination: other(source), workloadId: id, migrationId: null };
    const by = await get(BYSTANDER.id);
    const checker = await InvariantChecker.start(t);
    const since = Date.now();

    const events: MigrationEvent[] = [];
    let injected: Promise<void> | null = null;
    let injectError: unknown = null;
    const sub = nc.subscribe(subjects.migrationEvents('*'), {
      callback: (_err, msg) => {
        const parsed = MigrationEvent.safeParse(JSON.parse(new TextDecoder().decode(msg.data)));
        if (!parsed.success || parsed.data.workloadId !== id) return;
        events.push(parsed.data);
        if (!injected && cell.inject && parsed.data.phase === cell.phase && parsed.data.status === 'started') {
          injected = cell.inject(c, parsed.data.migrationId).catch((err: unknown) => {
            injectError = err;
          });
        }
      },
    });
    let record: MigrationRecord | null = null;
    let outcome: Outcome;
    let detail = '';
    try {
      await cell.setup?.(c);
      const res = await api('POST', `/v1/workloads/${id}/migrate`, { destination: c.destination, ...(cell.strategy ? { strategy: cell.strategy } : {}) });
      if (res.status === 202) {
        c.migrationId = res.body.migration.id as string;
        if (cell.inject) await eventually(`the fault at ${cell.phase}`, async () => injected !== null, 60_000, 20);
        await injected;
        expect(injectError).toBeNull();
        record = await finished(c.migrationId, cell.endWithinMs ?? 60_000).catch(async (err: unknown) => {
          const m = await migration(c.migrationId!).catch(() => null);
          rows.push({ fault: cell.fault, phase: cell.phase ?? 'before', outcome: 'did not end', detail: m ? `still ${m.state} at ${m.phase}` : 'no record', seconds: (Date.now() - started) / 1000 });
          throw err;
        });
        outcome = record.state === 'completed' ? 'completed' : 'rolled-back';
        expect(record.state, JSON.stringify(record.error)).not.toBe('failed');
        detail = record.error ? `${record.error.code} at ${record.error.phase}: ${record.error.message.slice(0, 120)}` : `strategy ${record.strategy}`;
        if (record.rollback) detail += `; rollback ${record.rollback.steps.join(', ')}`;
      } else {
        outcome = 'refused';
        detail = `${res.status} ${JSON.stringify(res.body.details?.problems?.map((p: { code: string }) => p.code) ?? res.body.code)}: ${String(res.body.message).slice(0, 120)}`;
      }
      const extra = await cell.verify?.(c, record, events);
      if (extra) detail += `; ${extra}`;
    } finally {
      sub.unsubscribe();
      await cell.teardown?.(c);
    }
    const row: Row = { fault: cell.fault, phase: cell.phase ?? 'before', outcome, detail: detail.replaceAll('|', '/'), seconds: 0 };
    rows.push(row);
    expect(cell.outcomes, detail).toContain(outcome);

    // the workload runs exactly once, where the outcome says, with its memory (the counter)
    await t.cluster.waitForHostsUp(HOSTS, 30_000);
    const where = outcome === 'completed' ? c.destination : c.source;
    const w = await eventually(
      `${id} running on ${where}`,
      async () => {
        const v = await get(id);
        return v.phase === 'running' && v.hostId === where && v.observed?.state === 'running' ? v : null;
      },
      30_000,
    );
    expect(w.epoch).toBe(outcome === 'completed' ? placed.epoch + 1 : placed.epoch);
    await eventually(`${address} answering`, async () => /^\d+$/.test(await talk(t.lab, 'h3', address, 'get')), 20_000);
    expect((await workloadStats(t.lab, 'h3', address)).counter).toBe(3);
    const summary = await checker.check();

    // the bystander on h3 is outside the blast radius: same process, same epoch, never fenced or restarted
    const after = await get(BYSTANDER.id);
    expect({ host: after.hostId, epoch: after.epoch, pid: after.observed?.pid, phase: after.phase }).toEqual({ host: 'h3', epoch: by.epoch, pid: by.observed?.pid, phase: 'running' });
    expect((await history('h3')).filter((e) => e.at >= since && (e.kind === 'fencing' || e.kind === 'restart'))).toEqual([]);
    const { failovers } = await t.cluster.get<{ failovers: FailoverRecord[] }>('/v1/failovers');
    expect(failovers.filter((f) => f.detectedAt >= since)).toEqual([]);
    expect(runsOf(join(t.lab.sharedPool, 'containers', BYSTANDER.id, 'rootfs', 'var', 'log', 'ticks.log')).runs).toHaveLength(1);

    const seconds = (Date.now() - started) / 1000;
    row.seconds = seconds;
    row.outcome += ' ✓';
    console.log(
      `cell ${cell.fault} @ ${cell.phase}: ${outcome} (${detail}) in ${seconds.toFixed(1)} s; checker: ${summary.samples} samples, max gap ${summary.maxGapMs} ms, recovered in ${summary.recoveredInMs} ms`,
    );
  };
  for (const [name, cell, index] of named.filter(([n]) => !only || only.test(n))) {
    if (cell.knownBug) it.fails(`${name} — fails until fixed: ${cell.knownBug}`, () => runCell(cell, index), 300_000);
    else it(name, () => runCell(cell, index), 300_000);
  }
});
