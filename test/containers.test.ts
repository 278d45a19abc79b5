import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { isRunning } from '@ferry/deploy';
import type { HostView, WorkloadAccepted, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { eventually, http } from './helpers/cluster.ts';
import { PROD, skipLab, startLabCluster, type LabCluster } from './helpers/lab.ts';

const workload = (id: string, address: string, overrides: Partial<WorkloadSpecInput> = {}): WorkloadSpecInput => ({
  id,
  template: 'busybox',
  command: ['/usr/bin/ferry-workload', '--mem', '32', '--dirty', '2', '--port', '7000'],
  resources: { vcpus: 0.5, memoryMiB: 128, diskMiB: 64 },
  networks: [{ network: PROD.name, address }],
  pool: 'local',
  ...overrides,
});

/**
 * Live (not zombie) processes with this command name. An exited process waits as a zombie until
 * PID 1 reaps it (systemd does so at once; this sandbox's init takes seconds): it holds no memory,
 * files or namespaces any more, so it is not "left behind".
 */
function living(comm: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm && isRunning(pid);
      } catch {
        return false;
      }
    });
}

describe.skipIf(skipLab())('containers on lab hosts (real runc, namespaces, cgroups)', () => {
  let t: LabCluster;

  beforeAll(async () => {
    t = await startLabCluster(['h1', 'h2']);
  });

  afterAll(async () => {
    await t?.close();
  });

  const api = (method: string, path: string, body?: unknown) => http(`${t.cluster.apiUrl}${path}`, { token: t.cluster.token, method, body });
  const get = (id: string) => t.cluster.get<WorkloadView>(`/v1/workloads/${id}`);
  const until = (id: string, what: string, test: (w: WorkloadView) => boolean, timeoutMs = 30_000) =>
    eventually(
      `${id} ${what}`,
      async () => {
        const w = await get(id);
        if (w.phase === 'failed' && !test(w)) throw new Error(`${id} failed: ${w.error?.message}`);
        return test(w) ? w : null;
      },
      timeoutMs,
    );
  const create = async (spec: WorkloadSpecInput) => {
    const res = await api('POST', '/v1/workloads', spec);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    return res.body as WorkloadAccepted;
  };
  /** busybox nc from a lab host's namespace to a workload's counter */
  const talk = (fromHost: string, address: string, lines: string[]) => t.lab.exec(fromHost, 'busybox', ['nc', '-w', '2', address, '7000'], { input: `${lines.join('\n')}\nquit\n` });

  it('runs a container on host 1 whose TCP counter answers at its own address from host 2', async () => {
    const accepted = await create(workload('counter', '10.77.0.50', { placement: { hosts: ['h1'] } }));
    expect(accepted.job.name).toBe('create');
    expect(accepted.workload.phase).toBe('pending');
    const running = await until('counter', 'running', (w) => w.phase === 'running' && w.observed?.state === 'running');
    expect(running.hostId).toBe('h1');
    expect(running.placement?.reason).toContain('h1');

    const reply = await talk('h2', '10.77.0.50', ['inc', 'inc', 'get']);
    expect(reply.exitCode, reply.stderr).toBe(0);
    expect(reply.stdout.trim().split('\n')).toEqual(['1', '2', '2']);
    // The same address always comes with the same MAC, as host 2 now has it in its ARP table.
    const neigh = await t.lab.exec('h2', 'ip', ['neigh', 'show', '10.77.0.50']);
    expect(neigh.stdout).toContain('02:fe:0a:4d:00:32');

    // The job that created it finished, and says so.
    const job = await t.cluster.get<{ state: string; result: { phase: string } }>(`/v1/jobs/${accepted.job.id}`);
    expect(job).toMatchObject({ state: 'completed', result: { phase: 'running' } });
  });

  it('reports each container state, epoch and usage in the capacity reports', async () => {
    const w = await until('counter', 'usage', (v) => (v.observed?.usage?.memoryBytes ?? 0) > 30 * 2 ** 20);
    expect(w.observed).toMatchObject({ state: 'running', epoch: 1, exit: null });
    expect(w.observed!.usage!.memoryLimitBytes).toBe(128 * 2 ** 20);
    expect(w.observed!.usage!.cpuNanos).toBeGreaterThan(0);
    expect(w.observed!.usage!.pids).toBeGreaterThanOrEqual(1);
    const host = await t.cluster.get<HostView>('/v1/hosts/h1');
    expect(host.capacity.containers.map((c) => c.id)).toContain('counter');
    expect(host.capacity.templates.map((tpl) => tpl.name)).toContain('busybox');
    expect(host.capacity.networks).toEqual([{ ...PROD, hostAddress: '10.77.0.254/24' }]);
  });

  it('kills a container that exceeds its memory limit and reports it as OOM-killed', async () => {
    await create(workload('hog', '10.77.0.51', { command: ['/usr/bin/ferry-workload', '--mem', '96', '--port', '7000'], resources: { vcpus: 0.5, memoryMiB: 48, diskMiB: 64 } }));
    const stopped = await until('hog', 'oom-killed', (w) => w.phase === 'stopped' && w.observed?.state === 'stopped');
    expect(stopped.lastExit?.reason).toBe('oom-killed');
    expect(stopped.observed?.exit?.reason).toBe('oom-killed');
  });

  it('leaves no process, mount, namespace, veth or cgroup behind after stop and destroy', async () => {
    await create(workload('tidy', '10.77.0.52', { placement: { hosts: ['h2'] } }));
    await until('tidy', 'running', (w) => w.phase === 'running' && w.observed?.pid != null);
    const host = t.lab.host('h2');
    const recordFile = join(host.dir, 'data', 'containers', 'tidy', 'record.json');
    const record = JSON.parse(readFileSync(recordFile, 'utf8')) as { pid: number; netns: string; rootfs: string };
    const cgroupDirs = ['memory', 'pids', 'cpu'].map((c) => `/sys/fs/cgroup/${c}/ferry-lab-${t.lab.id}/h2/tidy`);
    const hostVeths = async () => (await t.lab.exec('h2', 'ip', ['-o', 'link', 'show'])).stdout.split('\n').filter((l) => / fv[0-9a-f]{10}[@:]/.test(l));
    const mounts = () =>
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.includes(record.netns) || l.includes(record.rootfs));
    const namespaces = async () => (await execa('ip', ['netns', 'list'])).stdout;

    expect(isRunning(record.pid)).toBe(true);
    expect(await namespaces()).toContain(record.netns);
    expect(await hostVeths()).toHaveLength(1);
    for (const dir of cgroupDirs) expect(existsSync(dir), dir).toBe(true);

    const stop = await api('POST', '/v1/workloads/tidy/stop');
    expect(stop.status).toBe(202);
    const stopped = await until('tidy', 'stopped', (w) => w.phase === 'stopped' && w.observed?.state === 'stopped');
    expect(stopped.lastExit?.reason).toBe('stopped');
    expect(isRunning(record.pid)).toBe(false);
    expect(await namespaces()).not.toContain(record.netns);
    expect(await hostVeths()).toEqual([]);
    expect(mounts()).toEqual([]);
    for (const dir of cgroupDirs) expect(existsSync(dir), dir).toBe(false);
    expect(existsSync(record.rootfs)).toBe(true); // stopped, not destroyed

    // Started again it comes back on the same address, with a fresh namespace.
    await api('POST', '/v1/workloads/tidy/start');
    await until('tidy', 'running again', (w) => w.phase === 'running' && w.observed?.state === 'running');
    expect((await talk('h1', '10.77.0.52', ['inc'])).stdout.trim()).toBe('1');

    const destroy = await api('DELETE', '/v1/workloads/tidy');
    expect(destroy.status).toBe(202);
    await eventually('tidy gone', async () => (await api('GET', '/v1/workloads/tidy')).status === 404);
    expect((await namespaces()).split('\n').filter((n) => n.startsWith('fc-tidy'))).toEqual([]);
    expect(await hostVeths()).toEqual([]);
    expect(mounts()).toEqual([]);
    for (const dir of cgroupDirs) expect(existsSync(dir), dir).toBe(false);
    expect(existsSync(record.rootfs)).toBe(false);
    expect(existsSync(join(host.dir, 'data', 'containers', 'tidy'))).toBe(false);
    const runc = await execa('runc', ['--root', join(host.dir, 'data', 'runc'), 'list', '-q']);
    expect(runc.stdout.split('\n')).not.toContain('tidy');
  });

  it('fails a container whose command does not exist, cleanly', async () => {
    await create(workload('broken', '10.77.0.53', { command: ['/no/such/program'] }));
    const failed = await until('broken', 'failed', (w) => w.phase === 'failed', 60_000);
    expect(failed.error?.message).toMatch(/start/);
    expect((await execa('ip', ['netns', 'list'])).stdout).not.toMatch(/fc-broken/);
  });

  it('refuses bad specs with a 400 that lists every problem, and creates nothing', async () => {
    const before = (await t.cluster.get<{ workloads: WorkloadView[] }>('/v1/workloads')).workloads.map((w) => w.spec.id);
    const res = await api('POST', '/v1/workloads', {
      id: 'counter', // duplicate
      template: 'windows-95',
      command: ['/bin/sh'],
      resources: { vcpus: 1000, memoryMiB: -5, diskMiB: 10 },
      networks: [
        { network: 'prod', address: '10.99.0.7' },
        { network: 'dmz', address: '192.168.1.1' },
      ],
      pool: 'tape',
    });
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('BAD_REQUEST');
    const problems = res.body.details.problems as Array<{ field: string; code: string }>;
    const found = problems.map((p) => `${p.field}:${p.code}`);
    expect(found).toEqual(
      expect.arrayContaining([
        'id:DUPLICATE_ID',
        'template:TEMPLATE_UNKNOWN',
        'pool:POOL_UNKNOWN',
        'resources.vcpus:INVALID',
        'resources.memoryMiB:INVALID',
        'networks.0.address:ADDRESS_OUTSIDE_SUBNET',
        'networks.1.network:NETWORK_UNKNOWN',
      ]),
    );
    expect(res.body.message).toContain(`${problems.length} problem(s)`);

    const hostAddress = await api('POST', '/v1/workloads', workload('clash', '10.77.0.254'));
    expect(hostAddress.status).toBe(400);
    expect(hostAddress.body.details.problems).toEqual([expect.objectContaining({ field: 'networks.0.address', code: 'ADDRESS_IN_USE' })]);
    const taken = await api('POST', '/v1/workloads', workload('clash', '10.77.0.50'));
    expect(taken.body.details.problems[0].message).toContain('counter');
    const notJson = await fetch(`${t.cluster.apiUrl}/v1/workloads`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.cluster.token}`, 'content-type': 'application/json' },
      body: '{"id": ',
    });
    expect(notJson.status).toBe(400);

    const after = (await t.cluster.get<{ workloads: WorkloadView[] }>('/v1/workloads')).workloads.map((w) => w.spec.id);
    expect(after).toEqual(before);
  });

  it('tears the lab down without leaving anything on the machine', async () => {
    const { lab } = t;
    await t.close();
    const links = (await execa('ip', ['-o', 'link', 'show'])).stdout;
    expect(links).not.toContain(`fl${lab.id}`);
    expect((await execa('ip', ['netns', 'list'])).stdout).not.toContain(`ferry-lab-${lab.id}`);
    expect(existsSync(`/sys/fs/cgroup/memory/ferry-lab-${lab.id}`)).toBe(false);
    expect(existsSync(lab.dir)).toBe(false);
    expect(existsSync(`/run/ferry-labs/${lab.id}.json`)).toBe(false);
    expect(living('ferry-workload')).toEqual([]);
  });
});
