import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import type { NatsConnection } from 'nats';
import { isRunning } from '@ferry/deploy';
import { MigrationEvent, MigrationProgressEvent, subjects, type WorkloadSpecInput } from '@ferry/protocol';
import { eventually } from './helpers/cluster.ts';
import { endTcpClient, startTcpClient } from './helpers/tcp-client.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { expectTimersFire, labApi, talk as talkTo, workloadStats } from './helpers/workload.ts';

const workload = (id: string, address: string, extra: string[] = []): WorkloadSpecInput => ({
  id,
  template: 'busybox',
  command: ['/usr/bin/ferry-workload', '--mem', '64', '--dirty', '4', '--port', '7000', ...extra],
  resources: { vcpus: 0.5, memoryMiB: 256, diskMiB: 512 },
  networks: [{ network: PROD.name, address }],
  pool: 'local',
  placement: { hosts: ['h1', 'h2'] },
});

describe.skipIf(skipLab())('live migration between lab hosts (real runc, CRIU, rsync)', () => {
  let t: LabCluster;
  let nc: NatsConnection;

  beforeAll(async () => {
    // A scheduler that dies hands its jobs and workload locks over within 3 s.
    t = await startLabCluster(['h1', 'h2'], [PROD], { FERRY_JOB_LOCK_MS: '3000' });
    nc = await t.cluster.connectNats('observer');
  });

  afterAll(async () => {
    await nc?.close();
    await t?.close();
  });

  const { api, get, migration, finished, running } = labApi(() => t);
  const talk = (fromHost: string, address: string, line: string) => talkTo(t.lab, fromHost, address, line);
  const stats = (fromHost: string, address: string) => workloadStats(t.lab, fromHost, address);
  const other = (host: string) => (host === 'h1' ? 'h2' : 'h1');
  /** Until the workload's counter answers (its container may run a while before it listens). */
  const answering = (fromHost: string, address: string) => eventually(`${address} to answer`, async () => /^\d+$/.test(await talk(fromHost, address, 'get')), 30_000);
  const client = (fromHost: string, address: string) => startTcpClient(t.lab, fromHost, address);
  const endClient = endTcpClient;

  it('moves a running workload to another host: memory, counter and an open TCP connection survive', async () => {
    const before = await running(workload('mover', '10.77.0.60', ['--tick-log', '/var/log/ticks.log']));
    expect(before.hostId).toBe('h1');
    const sourcePid = before.observed!.pid!;
    const sourceNetns = (JSON.parse(readFileSync(join(t.lab.host('h1').dir, 'data', 'containers', 'mover', 'record.json'), 'utf8')) as { netns: string }).netns;
    for (let i = 0; i < 5; i++) await talk('h2', '10.77.0.60', 'inc');
    const pre = await stats('h2', '10.77.0.60');
    expect(pre.counter).toBe(5);
    await talk('h2', '10.77.0.60', 'reset-gaps');

    const events: MigrationEvent[] = [];
    const conn = client('h2', '10.77.0.60');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const res = await api('POST', '/v1/workloads/mover/migrate', { destination: 'h2' });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const id = res.body.migration.id as string;
    const copying: MigrationProgressEvent[] = [];
    // phases from the scheduler; the source agent's copy progress under the migration, by host
    for (const subject of [subjects.migrationEvents(id), subjects.migrationProgress(id, '*')]) {
      nc.subscribe(subject, {
        callback: (_e, msg) => {
          const data = JSON.parse(new TextDecoder().decode(msg.data)) as { type: string };
          if (data.type === 'migration.progress') copying.push(MigrationProgressEvent.parse(data));
          else events.push(MigrationEvent.parse(data));
        },
      });
    }
    expect(res.body.migration).toMatchObject({ source: 'h1', destination: 'h2', strategy: 'lazy', state: 'queued' });

    // a second migration of a workload already migrating is refused
    const again = await api('POST', '/v1/workloads/mover/migrate', { destination: 'h2' });
    expect(again.status).toBe(409);
    expect(again.body.message).toContain('already migrating');

    const done = await finished(id);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const summary = await endClient(conn);

    // the TCP client saw every reply on its one connection, in order
    expect(summary.error).toBeNull();
    expect(summary.ok).toBe(true);
    expect(summary.requests).toBeGreaterThan(20);
    expect(summary.first).toBe(6);

    // the same process kept running: its counter, uptime and memory pattern continue
    const after = await stats('h1', '10.77.0.60'); // reached from the old host's side of the segment
    expect(after.counter).toBe(5 + summary.requests);
    expect(after.uptimeMs).toBeGreaterThan(pre.uptimeMs);
    expect(JSON.parse(await talk('h1', '10.77.0.60', 'verify'))).toMatchObject({ ok: true, bad: 0 });
    expect(after.maxGapUs).toBeLessThan(5_000_000);
    // its timers were not disarmed by the checkpoint (CRIU restores an expired timerfd disarmed)
    await expectTimersFire(t.lab, 'h1', '10.77.0.60');

    const moved = await get('mover');
    expect(moved).toMatchObject({ hostId: 'h2', epoch: 2, phase: 'running', migratingTo: null });
    await eventually('the destination to report it', async () => (await get('mover')).observed?.epoch === 2);

    // timeline, bytes, freeze, events
    expect(done.completed).toEqual(['validate', 'reserve', 'prepare', 'presync', 'freeze', 'transfer', 'restore', 'verify', 'commit', 'cleanup']);
    for (const entry of done.timeline) expect(entry.ms, entry.phase).not.toBeNull();
    expect(done.freeze.agentMs).toBeGreaterThan(0);
    expect(done.bytes.sent).toBeGreaterThan(1024 * 1024);
    await eventually('the finished event', async () => events.some((e) => e.type === 'migration.finished'));
    expect(events.filter((e) => e.status === 'started').map((e) => e.phase)).toEqual(expect.arrayContaining(['prepare', 'freeze', 'restore', 'commit']));
    // a local pool: the root filesystem was copied, and the source told how far it got
    expect(copying.some((p) => p.phase === 'presync' && p.workloadId === 'mover')).toBe(true);

    // nothing of it is left on the old host
    expect(isRunning(sourcePid)).toBe(false);
    expect((await execa('ip', ['netns', 'list'])).stdout).not.toContain(sourceNetns);
    expect(existsSync(join(t.lab.host('h1').dir, 'pool', 'containers', 'mover'))).toBe(false);
    expect(existsSync(join(t.lab.host('h1').dir, 'data', 'containers', 'mover'))).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/memory/ferry-lab-${t.lab.id}/h1/mover`)).toBe(false);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(join(t.lab.host('h1').dir, 'pool', 'containers', 'mover'));
    const runc = await execa('runc', ['--root', join(t.lab.host('h1').dir, 'data', 'runc'), 'list', '-q']);
    expect(runc.stdout.split('\n')).not.toContain('mover');
  });

  it.each(['stop-and-copy', 'page-server'] as const)('moves a running workload with %s too', async (strategy) => {
    const address = strategy === 'page-server' ? '10.77.0.67' : '10.77.0.66';
    const id = `via-${strategy}`;
    const { hostId } = await running(workload(id, address));
    for (let i = 0; i < 4; i++) await talk('h2', address, 'inc');
    const res = await api('POST', `/v1/workloads/${id}/migrate`, { destination: other(hostId!), strategy });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const done = await finished(res.body.migration.id);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect(done.strategy).toBe(strategy);
    expect(done.bytes.sent).toBeGreaterThan(60 * 2 ** 20); // the memory went over the link during the freeze
    const s = await stats(hostId!, address);
    expect(s.counter).toBe(4);
    expect(JSON.parse(await talk(hostId!, address, 'verify'))).toMatchObject({ ok: true, bad: 0 });
    await expectTimersFire(t.lab, hostId!, address);
    expect(await get(id)).toMatchObject({ hostId: other(hostId!), epoch: 2, phase: 'running' });
  });

  it('moves a workload on the shared pool without copying its root filesystem (sharing proven by probes)', async () => {
    const { hostId } = await running({ ...workload('onshared', '10.77.0.69', ['--tick-log', '/var/log/ticks.log']), pool: 'shared' });
    await talk('h2', '10.77.0.69', 'inc');
    const res = await api('POST', '/v1/workloads/onshared/migrate', { destination: other(hostId!) });
    expect(res.status).toBe(202);
    const done = await finished(res.body.migration.id);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect(done.transfer?.sharedRootfs).toBe(true);
    expect(done.timeline.find((e) => e.phase === 'presync')?.bytes).toBe(0);
    // the source let go of the container but not of the root filesystem the destination now runs from
    expect(existsSync(join(t.lab.sharedPool, 'containers', 'onshared', 'rootfs', 'var', 'log', 'ticks.log'))).toBe(true);
    expect((await stats(hostId!, '10.77.0.69')).counter).toBe(1);
    await expectTimersFire(t.lab, hostId!, '10.77.0.69');
    // each host reads the other's probe file (probes refresh every 10 s)
    const sees = async (h: string) =>
      (await t.cluster.get<{ capacity: { pools: Array<{ id: string; probe?: { sees: Array<{ hostId: string }> } }> } }>(`/v1/hosts/${h}`)).capacity.pools
        .find((p) => p.id === 'shared')
        ?.probe?.sees.map((s) => s.hostId) ?? [];
    await eventually('both probes', async () => (await sees('h1')).includes('h2') && (await sees('h2')).includes('h1'), 20_000);
  });

  it('refuses unknown workloads, unknown hosts and the same host with a clear 4xx, and queues nothing', async () => {
    const count = async () => (await t.cluster.get<{ migrations: unknown[] }>('/v1/migrations')).migrations.length;
    const before = await count();
    const unknownWorkload = await api('POST', '/v1/workloads/ghost/migrate', { destination: 'h2' });
    expect(unknownWorkload).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    const unknownHost = await api('POST', '/v1/workloads/mover/migrate', { destination: 'h9' });
    expect(unknownHost).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    const sameHost = await api('POST', '/v1/workloads/mover/migrate', { destination: 'h2' });
    expect(sameHost.status).toBe(400);
    expect(sameHost.body.details.problems[0].code).toBe('SAME_HOST');
    const badBody = await api('POST', '/v1/workloads/mover/migrate', { destination: 'H2!', mode: 'teleport' });
    expect(badBody.status).toBe(400);
    const precopy = await api('POST', '/v1/workloads/mover/migrate', { destination: 'h1', strategy: 'precopy' });
    expect(precopy.status).toBe(409);
    expect(precopy.body.details.problems[0].code).toBe('PRECOPY_UNSUPPORTED');
    const dry = await api('POST', '/v1/workloads/mover/migrate?dryRun=true', {});
    expect(dry).toMatchObject({ status: 200, body: { dryRun: true, destination: 'h1', strategy: 'lazy' } });
    expect(await count()).toBe(before);
  });

  describe('fault injection: every failure before the commit leaves the workload running once, on the source', () => {
    const ballast = (id: string, address: string, megabytes: number): WorkloadSpecInput => ({
      ...workload(id, address),
      // a root filesystem big enough that its presync takes a while
      command: ['/bin/sh', '-c', `dd if=/dev/urandom of=/ballast bs=1M count=${megabytes} 2>/dev/null; exec /usr/bin/ferry-workload --mem 32 --dirty 2 --port 7000`],
      resources: { vcpus: 0.5, memoryMiB: 256, diskMiB: 2048 },
    });

    /** The workload runs on its source only, answers, kept its counter and memory; the destination holds nothing of it. */
    const intactOnSource = async (id: string, address: string, counter: number, source: string) => {
      const destination = other(source);
      const w = await eventually(`${id} back on ${source}`, async () => {
        const v = await get(id);
        return v.phase === 'running' && v.hostId === source && v.observed?.state === 'running' ? v : null;
      });
      expect(w).toMatchObject({ epoch: 1, migratingTo: null });
      await answering(destination, address);
      const s = await stats(destination, address);
      expect(s.counter).toBe(counter);
      expect(JSON.parse(await talk(destination, address, 'verify'))).toMatchObject({ ok: true, bad: 0 });
      await expectTimersFire(t.lab, destination, address);
      const runc = await execa('runc', ['--root', join(t.lab.host(destination).dir, 'data', 'runc'), 'list', '-q']);
      expect(runc.stdout.split('\n')).not.toContain(id);
      expect(existsSync(join(t.lab.host(destination).dir, 'pool', 'containers', id))).toBe(false);
      expect(existsSync(join(t.lab.host(destination).dir, 'data', 'containers', id))).toBe(false);
      const host = await t.cluster.get<{ capacity: { containers: Array<{ id: string; state: string }> } }>(`/v1/hosts/${source}`);
      expect(host.capacity.containers.filter((c) => c.id === id).map((c) => c.state)).toEqual(['running']);
    };

    it('a cancel through DELETE /v1/migrations/:id', async () => {
      const { hostId: source } = await running(ballast('cancelme', '10.77.0.61', 300));
      await talk('h2', '10.77.0.61', 'inc');
      const res = await api('POST', '/v1/workloads/cancelme/migrate', { destination: other(source!) });
      expect(res.status).toBe(202);
      const cancel = await api('DELETE', `/v1/migrations/${res.body.migration.id}`);
      expect(cancel.status).toBe(202);
      expect(cancel.body.cancelRequested).toBe(true);
      const done = await finished(res.body.migration.id);
      expect(done).toMatchObject({ state: 'rolled-back', error: { code: 'CANCELLED' } });
      await intactOnSource('cancelme', '10.77.0.61', 1, source!);
      expect((await api('DELETE', `/v1/migrations/${res.body.migration.id}`)).status).toBe(409);
    });

    it('the transfer killed mid-way', async () => {
      const { hostId: source } = await running(ballast('cutoff', '10.77.0.62', 300));
      await talk('h2', '10.77.0.62', 'inc');
      const res = await api('POST', '/v1/workloads/cutoff/migrate', { destination: other(source!) });
      expect(res.status).toBe(202);
      // the source's rsync client of this migration's presync, found by its destination URL
      const killed = await eventually(
        'the presync rsync',
        async () => {
          const m = await migration(res.body.migration.id);
          if (!m.transfer) return null;
          const needle = `${m.transfer.address}:${m.transfer.rsyncPort}/ct`;
          for (const pid of readdirSafe('/proc')) {
            const cmdline = readText(`/proc/${pid}/cmdline`).split('\0');
            if (cmdline[0]?.endsWith('rsync') && cmdline.some((a) => a.includes(needle))) {
              process.kill(Number(pid), 'SIGKILL');
              return pid;
            }
          }
          return null;
        },
        20_000,
        10,
      );
      expect(killed).toBeTruthy();
      const done = await finished(res.body.migration.id);
      expect(done.state).toBe('rolled-back');
      expect(done.error?.phase).toBe('presync');
      await intactOnSource('cutoff', '10.77.0.62', 1, source!);
    });

    // A failure after the dump, for every live strategy: the workload must come back from wherever
    // its pages are — a lazy checkpoint still holding it, its kept images, or (page-server) the
    // destination's images directory, pulled back before the destination is cleaned.
    it.each([
      ['lazy', 'norestore', '10.77.0.63'],
      ['stop-and-copy', 'norestore-sc', '10.77.0.70'],
      ['page-server', 'norestore-ps', '10.77.0.71'],
    ] as const)('the restore failing on the destination after a %s dump', async (strategy, id, address) => {
      const { hostId: source } = await running(workload(id, address));
      const destination = other(source!);
      for (let i = 0; i < 3; i++) await talk('h2', address, 'inc');
      // stale, unreadable runc state for this id on the destination: its restore cannot proceed
      const stale = join(t.lab.host(destination).dir, 'data', 'runc', id);
      await execa('mkdir', ['-p', stale]);
      await execa('sh', ['-c', 'echo garbage > "$1/state.json"', 'sh', stale]);
      try {
        const res = await api('POST', `/v1/workloads/${id}/migrate`, { destination, strategy });
        expect(res.status).toBe(202);
        const done = await finished(res.body.migration.id);
        expect(done).toMatchObject({ state: 'rolled-back', strategy, error: { phase: 'restore' } });
        expect(done.completed).toContain('freeze');
        expect(done.rollback?.steps).toEqual(['ready-source', 'abort-destination', 'resume-source']);
      } finally {
        await execa('rm', ['-rf', stale]);
      }
      await intactOnSource(id, address, 3, source!);
    });

    it('the destination agent dying during the migration (and coming back)', async () => {
      const { hostId: source } = await running(ballast('orphan', '10.77.0.64', 150));
      const destination = other(source!);
      for (let i = 0; i < 2; i++) await talk('h2', '10.77.0.64', 'inc');
      const res = await api('POST', '/v1/workloads/orphan/migrate', { destination });
      expect(res.status).toBe(202);
      const id = res.body.migration.id as string;
      await eventually('the presync', async () => (await migration(id)).phase === 'presync');
      await t.cluster.supervisor.stop(t.cluster.agent(destination)!, 0); // SIGKILL
      // the source keeps running the workload; the rollback waits for the destination to clean up
      await eventually('a rollback under way', async () => (await migration(id)).state === 'rolling-back', 60_000);
      t.cluster.startAgent(destination);
      const done = await finished(id, 90_000);
      expect(done.state).toBe('rolled-back');
      await intactOnSource('orphan', '10.77.0.64', 2, source!);
    });
  });

  it('goes on where it stopped when the scheduler driving it dies', async () => {
    const { hostId } = await running({
      ...workload('relay', '10.77.0.68'),
      command: ['/bin/sh', '-c', 'dd if=/dev/urandom of=/ballast bs=1M count=300 2>/dev/null; exec /usr/bin/ferry-workload --mem 32 --port 7000'],
      resources: { vcpus: 0.5, memoryMiB: 256, diskMiB: 2048 },
    });
    await talk('h2', '10.77.0.68', 'inc');
    const res = await api('POST', '/v1/workloads/relay/migrate', { destination: other(hostId!) });
    const id = res.body.migration.id as string;
    await eventually('the presync', async () => (await migration(id)).phase === 'presync', 20_000, 20);
    const scheduler = t.cluster.supervisor.list().find((p) => p.name === 'scheduler' && !p.exited)!;
    await t.cluster.supervisor.stop(scheduler, 0); // SIGKILL mid-presync
    t.cluster.startScheduler('scheduler-2');
    const done = await finished(id, 90_000);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    // the presync that was cut off ran again; nothing before it did
    expect(done.timeline.filter((e) => e.phase === 'presync').length).toBeGreaterThanOrEqual(2);
    expect(done.timeline.filter((e) => e.phase === 'prepare')).toHaveLength(1);
    expect(await get('relay')).toMatchObject({ hostId: other(hostId!), epoch: 2, phase: 'running' });
    expect((await stats(hostId!, '10.77.0.68')).counter).toBe(1);
    await expectTimersFire(t.lab, hostId!, '10.77.0.68');
  });

  it('moves a stopped workload cold: its root filesystem, nothing else', async () => {
    const { hostId } = await running(workload('sleeper', '10.77.0.65', ['--tick-log', '/var/log/ticks.log']));
    const [source, destination] = [hostId!, other(hostId!)];
    await api('POST', '/v1/workloads/sleeper/stop');
    await eventually('sleeper stopped', async () => (await get('sleeper')).phase === 'stopped');
    const ticks = (host: string) => readFileSync(join(t.lab.host(host).dir, 'pool', 'containers', 'sleeper', 'rootfs', 'var', 'log', 'ticks.log'), 'utf8');
    const before = ticks(source);
    const res = await api('POST', '/v1/workloads/sleeper/migrate', {}); // anywhere it fits: the other host
    expect(res.status).toBe(202);
    expect(res.body.migration).toMatchObject({ destination, strategy: 'cold' });
    const done = await finished(res.body.migration.id);
    expect(done.state, JSON.stringify(done.error)).toBe('completed');
    expect(done.completed).not.toContain('freeze');
    expect(await get('sleeper')).toMatchObject({ hostId: destination, epoch: 2, phase: 'stopped' });
    expect(ticks(destination)).toBe(before);
    expect(existsSync(join(t.lab.host(source).dir, 'pool', 'containers', 'sleeper'))).toBe(false);
    await api('POST', '/v1/workloads/sleeper/start');
    await eventually(`sleeper running on ${destination}`, async () => {
      const w = await get('sleeper');
      return w.phase === 'running' && w.hostId === destination && w.observed?.state === 'running';
    });
    await answering(source, '10.77.0.65');
    expect(await talk(source, '10.77.0.65', 'get')).toBe('0');
    await expectTimersFire(t.lab, source, '10.77.0.65');
  });
});

function readdirSafe(dir: string): string[] {
  try {
    return readdirSync(dir).filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
