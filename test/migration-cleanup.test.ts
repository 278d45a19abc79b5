import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from 'nats';
import { MigrationEvent, subjects, type WorkloadSpecInput } from '@ferry/protocol';
import { eventually } from './helpers/cluster.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { expectTimersFire, labApi, talk, workloadStats } from './helpers/workload.ts';

const workload = (id: string, address: string): WorkloadSpecInput => ({
  id,
  template: 'busybox',
  command: ['/usr/bin/ferry-workload', '--mem', '64', '--port', '7000'],
  resources: { vcpus: 0.5, memoryMiB: 256, diskMiB: 512 },
  networks: [{ network: PROD.name, address }],
  pool: 'local',
  placement: { hosts: ['h1', 'h2'] },
});

/** Processes whose command line holds every one of `parts` (e.g. an rsync daemon of one migration). */
function processesWith(...parts: string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue;
    }
    if (parts.every((part) => cmdline.includes(part))) pids.push(Number(entry));
  }
  return pids;
}

describe.skipIf(skipLab())('migration cleanup after the commit (real runc, CRIU, rsync)', () => {
  let t: LabCluster;
  let nc: NatsConnection;

  beforeAll(async () => {
    // A dead agent's host is declared down only after 5 minutes here: its cleanup step is never
    // deferred, the scheduler has to retry it against the silent agent until it answers again.
    t = await startLabCluster(['h1', 'h2'], [PROD], { FERRY_DOWN_AFTER_MS: '300000' });
    nc = await t.cluster.connectNats('observer');
  });

  afterAll(async () => {
    await nc?.close();
    await t?.close();
  });

  const { api, get, migration, finished, running } = labApi(() => t);
  const other = (host: string) => (host === 'h1' ? 'h2' : 'h1');

  it('a destination agent gone for 80 s right after the commit: the cleanup retries until done, the migration completes, no daemon of it stays', async () => {
    const address = '10.77.0.85';
    const placed = await running(workload('after-commit', address));
    for (let i = 0; i < 2; i++) await talk(t.lab, 'h2', address, 'inc');
    const source = placed.hostId!;
    const destination = other(source);

    // The destination's agent dies the moment the commit starts: the cleanup's first request to it fails.
    let killed: Promise<void> | null = null;
    const sub = nc.subscribe(subjects.migrationEvents('*'), {
      callback: (_err, msg) => {
        const event = MigrationEvent.safeParse(JSON.parse(new TextDecoder().decode(msg.data)));
        if (!killed && event.success && event.data.workloadId === 'after-commit' && event.data.phase === 'commit' && event.data.status === 'started') {
          killed = t.cluster.supervisor.stop(t.cluster.agent(destination)!, 0);
        }
      },
    });
    const res = await api('POST', '/v1/workloads/after-commit/migrate', { destination, strategy: 'stop-and-copy' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const id = res.body.migration.id as string;
    await eventually('the destination agent killed at the commit', async () => killed !== null, 60_000);
    await killed;
    sub.unsubscribe();
    // the rsync daemon its prepare started outlives the agent for now
    expect(processesWith('rsync', '--daemon', id).length).toBeGreaterThan(0);
    // longer than a migration job's attempts last (6, from 2 s doubling: about a minute)
    for (let waited = 0; waited < 80_000; waited += 5_000) {
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      const now = await migration(id);
      expect(now.state, JSON.stringify(now.error)).toBe('running'); // not given up, not failed back
      expect(now.phase).toBe('cleanup');
    }
    t.cluster.startAgent(destination);

    const done = await finished(id);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect(done.completed).toContain('cleanup');
    expect(await get('after-commit')).toMatchObject({ hostId: destination, epoch: 2, phase: 'running', migratingTo: null });
    expect((await workloadStats(t.lab, 'h2', address)).counter).toBe(2);
    await expectTimersFire(t.lab, 'h2', address);

    // the destination finished its side (deferred or retried): no staging, no daemon listening
    await t.cluster.waitForHostsUp([destination], 30_000);
    await eventually('the destination side finished', async () => !existsSync(join(t.lab.host(destination).dir, 'data', 'migrations', id)), 60_000);
    await eventually('no rsync daemon of the migration', async () => processesWith('rsync', '--daemon', id).length === 0, 30_000);

    const log = readFileSync(t.cluster.supervisor.list().find((p) => p.name === 'scheduler')!.logFile, 'utf8');
    expect(log).toContain('cleanup step failed; retrying');
    expect(log).not.toContain('the destination died while pulling pages');

    // the workload is free to move again (a stuck migration would answer 409 "already migrating")
    const back = await api('POST', '/v1/workloads/after-commit/migrate', { destination: source, strategy: 'stop-and-copy' });
    expect(back.status, JSON.stringify(back.body)).toBe(202);
    expect((await finished(back.body.migration.id as string)).state).toBe('completed');
  }, 240_000);
});
