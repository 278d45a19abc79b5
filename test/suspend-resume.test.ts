import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import type { FailoverRecord, JobView, WorkloadView } from '@ferry/protocol';
import { eventually } from './helpers/cluster.ts';
import { InvariantChecker } from './helpers/invariants.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';
import { expectTimersFire, labApi, labWorkload, talk as talkTo, workloadStats } from './helpers/workload.ts';

/**
 * Suspend to disk and resume (issue 17 part 7) with real runc, CRIU, agents, BullMQ and the
 * scheduler restarted in between: the workload's memory (its counter) comes back, its timers fire,
 * it runs on exactly one host, nothing of the checkpoint is left.
 */
describe.skipIf(skipLab())('suspend to disk and resume (real runc, CRIU, scheduler restart)', () => {
  let t: LabCluster;

  beforeAll(async () => {
    // a scheduler that is stopped hands its jobs and workload locks over within 3 s
    t = await startLabCluster(['h1', 'h2'], [PROD], { FERRY_JOB_LOCK_MS: '3000' });
  });

  afterAll(async () => {
    await t?.close();
  });

  const { api, get, running } = labApi(() => t);
  const talk = (fromHost: string, address: string, line: string) => talkTo(t.lab, fromHost, address, line);
  const stats = (fromHost: string, address: string) => workloadStats(t.lab, fromHost, address);
  const other = (host: string) => (host === 'h1' ? 'h2' : 'h1');

  /** Until the job ended; its view. */
  const jobEnded = (id: string) =>
    eventually(
      `job ${id} to end`,
      async () => {
        const j = (await api('GET', `/v1/jobs/${id}`)).body as JobView;
        return j.state === 'completed' || j.state === 'failed' ? j : null;
      },
      120_000,
      200,
    );

  /** POSTs, expects 202, waits for the job to complete; logs how long it took (request to job end) */
  const accepted = async (path: string, body?: unknown) => {
    const asked = Date.now();
    const res = await api('POST', path, body);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const job = await jobEnded(res.body.job.id as string);
    expect(job.state, job.failedReason ?? '').toBe('completed');
    console.log(`${path}: job ${job.name} done in ${(job.finishedAt ?? Date.now()) - asked} ms`);
    return job;
  };

  /** The hosts whose runc runs (or holds) a container of `id`, and those with its cgroup. */
  const traces = async (id: string) => {
    const hosts: string[] = [];
    for (const h of ['h1', 'h2']) {
      const runc = await execa('runc', ['--root', join(t.lab.host(h).dir, 'data', 'runc'), 'list', '-q'], { reject: false });
      if (runc.stdout.split('\n').includes(id)) hosts.push(`${h}:runc`);
      if (existsSync(join(t.lab.host(h).dir, 'data', 'containers', id))) hosts.push(`${h}:record`);
      for (const root of ['/sys/fs/cgroup/memory', '/sys/fs/cgroup']) {
        if (existsSync(join(root, `ferry-lab-${t.lab.id}`, h, id))) hosts.push(`${h}:cgroup`);
      }
    }
    return hosts;
  };

  /** the ferry CLI against this lab's API (no config file of the machine's) */
  const ferry = (args: string[]) =>
    execa(join(import.meta.dirname, '..', 'packages', 'cli', 'bin', 'ferry'), ['--url', t.cluster.apiUrl, '--token', t.cluster.token, ...args], {
      reject: false,
      env: { FERRY_CONFIG: join(t.stateDir, 'no-cli-config.yaml') },
      timeout: 120_000,
    });

  /** the lab's NATS identities name scheduler, scheduler-2 … scheduler-4: each restart takes the next */
  let restarts = 1;
  const restartScheduler = async () => {
    const scheduler = t.cluster.supervisor.list().find((p) => p.name.startsWith('scheduler') && !p.exited)!;
    await t.cluster.supervisor.stop(scheduler);
    t.cluster.startScheduler(`scheduler-${++restarts}`);
  };

  it('shared pool: suspends (no process anywhere, images in the pool), survives a scheduler restart, resumes on the other host with its memory', async () => {
    const address = '10.77.0.81';
    const before = await running(labWorkload('sus-shared', address));
    const origin = before.hostId!;
    for (let i = 0; i < 7; i++) await talk('h2', address, 'inc');
    const pre = await stats('h2', address);
    expect(pre.counter).toBe(7);
    const checker = await InvariantChecker.start(t);

    await accepted('/v1/workloads/sus-shared/suspend');
    const suspended = await get('sus-shared');
    expect(suspended).toMatchObject({ phase: 'suspended', desired: 'suspended', hostId: null, epoch: before.epoch });
    expect(suspended.suspended).toMatchObject({ hostId: origin, pool: 'shared', shared: true, epoch: before.epoch });
    const image = suspended.suspended!;
    console.log(`suspended sus-shared: ${(image.bytes / 2 ** 20).toFixed(1)} MiB of images in ${image.imagesDir}`);
    // the memory went to disk: 16 MiB of the workload's own pattern at least
    expect(image.bytes).toBeGreaterThan(16 * 2 ** 20);
    expect(readdirSync(image.imagesDir)).toEqual(expect.arrayContaining(['inventory.img']));
    expect(existsSync(join(image.imagesDir, '..', 'rootfs'))).toBe(true);
    // no process, runc state, record or cgroup of it on any host; its address does not answer
    expect(await traces('sus-shared')).toEqual([]);
    expect(await talk(other(origin), address, 'get')).toBe('');
    await eventually('no host reports it', async () => {
      const { hosts } = await t.cluster.get<{ hosts: Array<{ id: string; capacity: { containers: Array<{ id: string }> } }> }>('/v1/hosts');
      return hosts.every((h) => !h.capacity.containers.some((c) => c.id === 'sus-shared'));
    });

    // a suspended workload is resumed, not started, stopped or suspended again: 409, nothing changes
    for (const op of ['suspend', 'start', 'stop']) {
      const res = await api('POST', `/v1/workloads/sus-shared/${op}`);
      expect(res.status, `${op}: ${JSON.stringify(res.body)}`).toBe(409);
    }
    expect((await get('sus-shared')).updatedAt).toBe(suspended.updatedAt);

    // the record is durable: a new scheduler finds it suspended, and failover leaves it alone
    await restartScheduler();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await get('sus-shared')).toMatchObject({ phase: 'suspended', hostId: null, suspended: image });

    const target = other(origin);
    await accepted('/v1/workloads/sus-shared/resume', { host: target });
    const resumed = await eventually('sus-shared running again', async () => {
      const w = await get('sus-shared');
      return w.phase === 'running' && w.observed?.state === 'running' ? w : null;
    });
    expect(resumed).toMatchObject({ hostId: target, epoch: before.epoch + 1, desired: 'running', suspended: null });
    expect(resumed.observed?.epoch).toBe(before.epoch + 1);
    // its memory came back: the counter goes on from 7, the same process (pid in its namespace)
    await eventually(`${address} to answer`, async () => /^\d+$/.test(await talk(origin, address, 'get')), 30_000);
    const post = await stats(origin, address);
    expect(post.counter).toBe(7);
    expect(post.pid).toBe(pre.pid);
    expect(post.ticks).toBeGreaterThan(pre.ticks);
    expect(await talk(origin, address, 'inc')).toBe('8');
    expect(JSON.parse(await talk(origin, address, 'verify'))).toMatchObject({ ok: true, bad: 0 });
    await expectTimersFire(t.lab, origin, address);
    // exactly one host runs it; the checkpoint is gone
    expect(await traces('sus-shared')).toEqual(expect.arrayContaining([`${target}:runc`]));
    expect((await traces('sus-shared')).filter((x) => x.startsWith(origin))).toEqual([]);
    expect(existsSync(image.imagesDir)).toBe(false);
    expect(existsSync(join(image.imagesDir, '..', 'suspended.json'))).toBe(false);
    await checker.check();
  }, 240_000);

  it('local pool: resumes only on its own host (409 elsewhere), with its memory; a suspended workload can be deleted', async () => {
    const address = '10.77.0.82';
    const spec = labWorkload('sus-local', address, { pool: 'local', ha: { enabled: false, priority: 0 }, placement: { hosts: ['h1'] } });
    const before = await running(spec);
    expect(before.hostId).toBe('h1');
    for (let i = 0; i < 3; i++) await talk('h2', address, 'inc');
    const checker = await InvariantChecker.start(t);

    await accepted('/v1/workloads/sus-local/suspend');
    const suspended = await get('sus-local');
    expect(suspended.suspended).toMatchObject({ hostId: 'h1', pool: 'local', shared: false });
    expect(suspended.suspended!.imagesDir.startsWith(join(t.lab.host('h1').dir, 'pool'))).toBe(true);
    expect(await traces('sus-local')).toEqual([]);

    // elsewhere: refused up front, with why, and nothing changes
    const elsewhere = await api('POST', '/v1/workloads/sus-local/resume', { host: 'h2' });
    expect(elsewhere.status).toBe(409);
    expect(elsewhere.body.message).toContain('local pool');
    const unknown = await api('POST', '/v1/workloads/sus-local/resume', { host: 'h9' });
    expect(unknown.status).toBe(404);
    const bad = await api('POST', '/v1/workloads/sus-local/resume', { host: 'h1', extra: true });
    expect(bad.status).toBe(400);
    expect((await get('sus-local')).updatedAt).toBe(suspended.updatedAt);

    await restartScheduler();
    await accepted('/v1/workloads/sus-local/resume');
    const resumed = await eventually('sus-local running again', async () => {
      const w = await get('sus-local');
      return w.phase === 'running' && w.observed?.state === 'running' ? w : null;
    });
    expect(resumed).toMatchObject({ hostId: 'h1', epoch: before.epoch + 1 });
    await eventually(`${address} to answer`, async () => /^\d+$/.test(await talk('h2', address, 'get')), 30_000);
    expect((await stats('h2', address)).counter).toBe(3);
    await expectTimersFire(t.lab, 'h2', address);
    // resuming a running workload: 409
    expect((await api('POST', '/v1/workloads/sus-local/resume')).status).toBe(409);
    await checker.check();

    // suspended once more, by the CLI this time, then deleted: its pool directory (root filesystem, images) goes
    const cli = await ferry(['suspend', 'sus-local', '-o', 'json']);
    expect(cli.exitCode, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toMatchObject({ phase: 'suspended', hostId: null, suspended: { hostId: 'h1', pool: 'local' } });
    const refusedByCli = await ferry(['resume', 'sus-local', '--host', 'h2']);
    expect(refusedByCli.exitCode).not.toBe(0);
    expect(refusedByCli.stderr).toContain('local pool');
    const dir = join(t.lab.host('h1').dir, 'pool', 'containers', 'sus-local');
    expect(existsSync(join(dir, 'suspended'))).toBe(true);
    const del = await api('DELETE', '/v1/workloads/sus-local');
    expect(del.status).toBe(202);
    await jobEnded(del.body.job.id as string);
    expect((await api('GET', '/v1/workloads/sus-local')).status).toBe(404);
    expect(existsSync(dir)).toBe(false);
  }, 240_000);

  it('the death of the host it was suspended on: failover leaves it suspended (no restart from its root filesystem); on a shared pool it resumes elsewhere', async () => {
    const address = '10.77.0.84';
    const before = await running(labWorkload('sus-dead', address));
    const origin = before.hostId!;
    for (let i = 0; i < 4; i++) await talk(other(origin), address, 'inc');
    await accepted('/v1/workloads/sus-dead/suspend');
    const image = (await get('sus-dead')).suspended!;
    expect(image.hostId).toBe(origin);

    const killedAt = Date.now();
    await t.cluster.supervisor.stop(t.cluster.agent(origin)!, 0); // SIGKILL: the host is gone
    await eventually(`${origin} declared down`, async () => (await t.cluster.get<{ state: string }>(`/v1/hosts/${origin}`)).state === 'down', 30_000, 200);
    // failover runs for a down host that owns HA workloads (docs/failover.md): a suspended one owns
    // none, so whatever failover the death brings (another HA workload on that host) leaves it be
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const { failovers } = await t.cluster.get<{ failovers: FailoverRecord[] }>('/v1/failovers');
    for (const f of failovers.filter((x) => x.hostId === origin && x.detectedAt >= killedAt)) expect(JSON.stringify(f)).not.toContain('sus-dead');
    expect(await get('sus-dead')).toMatchObject({ phase: 'suspended', hostId: null, epoch: before.epoch, suspended: image });
    expect(await traces('sus-dead')).toEqual([]);

    // its host down, the shared pool's other host takes it (no --host: resumeTarget's choice)
    await accepted('/v1/workloads/sus-dead/resume');
    const resumed = await eventually('sus-dead running again', async () => {
      const w = await get('sus-dead');
      return w.phase === 'running' && w.observed?.state === 'running' ? w : null;
    });
    expect(resumed).toMatchObject({ hostId: other(origin), epoch: before.epoch + 1 });
    expect(resumed.placement?.reason).toContain('shared pool shared');
    await eventually(`${address} to answer`, async () => /^\d+$/.test(await talk(other(origin), address, 'get')), 30_000);
    expect((await stats(other(origin), address)).counter).toBe(4);
    await expectTimersFire(t.lab, other(origin), address);

    // the host comes back: it runs nothing of sus-dead
    t.cluster.startAgent(origin);
    await t.cluster.waitForHostsUp([origin], 30_000);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    expect((await traces('sus-dead')).filter((x) => x.startsWith(origin))).toEqual([]);
    expect((await get('sus-dead')).hostId).toBe(other(origin));
  }, 240_000);

  it('refuses to suspend a workload that does not run (409), and changes nothing', async () => {
    const address = '10.77.0.83';
    const res = await api('POST', '/v1/workloads?start=false', labWorkload('sus-stopped', address));
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const stopped = await eventually('sus-stopped created', async () => {
      const w = await get('sus-stopped');
      return w.phase === 'stopped' ? w : null;
    });
    const refused = await api('POST', '/v1/workloads/sus-stopped/suspend');
    expect(refused.status).toBe(409);
    expect(refused.body.message).toContain('only a running workload can be suspended');
    const notSuspended = await api('POST', '/v1/workloads/sus-stopped/resume');
    expect(notSuspended.status).toBe(409);
    expect(notSuspended.body.message).toContain('only a suspended workload can be resumed');
    const after: WorkloadView = await get('sus-stopped');
    expect(after.updatedAt).toBe(stopped.updatedAt);
    expect(after.phase).toBe('stopped');
    expect((await api('POST', '/v1/workloads/nope/suspend')).status).toBe(404);
  }, 120_000);
});
