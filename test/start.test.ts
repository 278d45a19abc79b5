import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { execa, type ResultPromise } from 'execa';
import { Lab, freePort, isRunning, repoRoot } from '@ferry/deploy';
import { createLogger } from '@ferry/runtime';
import type { HostListResponse, WorkloadView } from '@ferry/protocol';
import { eventually, http } from './helpers/cluster.ts';
import { skipLab } from './helpers/lab.ts';

interface RunFile {
  supervisor: { pid: number };
  processes: Array<{ name: string; pid: number }>;
}

const dirs: string[] = [];

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The main job exactly as `npm start` runs it (minus deploy/ensure), with its embedded NATS and Redis. */
async function startMainJob(previousStateDir?: string) {
  const stateDir = previousStateDir ?? mkdtempSync(join(tmpdir(), 'ferry-start-'));
  dirs.push(stateDir);
  const port = await freePort();
  const token = 'start-test-token-0123456789';
  let output = '';
  // No NATS or Redis URL: the job must start its own.
  const { FERRY_NATS_URL: _nats, FERRY_REDIS_URL: _redis, ...env } = process.env;
  const child: ResultPromise = execa(process.execPath, ['--import', 'tsx', 'deploy/src/start.ts'], {
    cwd: repoRoot,
    reject: false,
    all: true,
    extendEnv: false,
    forceKillAfterDelay: false, // the job's own clean stop is what is tested: no SIGKILL 5 s after SIGTERM
    env: { ...env, FERRY_STATE_DIR: stateDir, FERRY_API_PORT: String(port), FERRY_API_TOKEN: token },
  });
  child.all!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await eventually(
    '"hosts up" from npm start',
    async () => {
      if (child.exitCode !== null) throw new Error(`npm start exited: ${output}`);
      return output.includes('hosts up');
    },
    45_000,
  );
  const run = JSON.parse(readFileSync(join(stateDir, 'run.json'), 'utf8')) as RunFile;
  const labId = /lab ([0-9a-f]{4}): hosts/.exec(output)?.[1];
  if (!labId) throw new Error(`npm start did not name its lab: ${output}`);
  return { child, url: `http://127.0.0.1:${port}`, token, run, stateDir, labId, output: () => output };
}

describe.skipIf(skipLab())('npm start (the main job)', () => {
  it('serves three hosts, six demo containers and a Debian VPS, and on SIGTERM stops every process and removes the lab', async () => {
    const job = await startMainJob();
    expect(job.output()).toContain(`API    ${job.url}`);
    expect(job.output()).toContain(`token  ${job.token}`);
    const list = await http(`${job.url}/v1/hosts`, { token: job.token });
    const hosts = (list.body as HostListResponse).hosts;
    expect(hosts.map((h) => [h.id, h.state])).toEqual([
      ['host-1', 'up'],
      ['host-2', 'up'],
      ['host-3', 'up'],
    ]);
    for (const host of hosts) {
      expect(host.capacity.cpu.flags.length).toBeGreaterThan(10);
      expect(host.capacity.memory.totalBytes).toBeGreaterThan(2 ** 28);
    }
    expect(job.run.processes.map((p) => p.name)).toEqual(['nats', 'redis', 'scheduler', 'api', 'agent-host-1', 'agent-host-2', 'agent-host-3']);
    const workloads = ((await http(`${job.url}/v1/workloads`, { token: job.token })).body as { workloads: WorkloadView[] }).workloads;
    expect(workloads).toHaveLength(7);
    for (const host of ['host-1', 'host-2', 'host-3']) expect(workloads.filter((w) => w.hostId === host && w.spec.id.startsWith('demo-'))).toHaveLength(2);
    // the VPS booted its own init, which started sshd and nginx
    const vps = workloads.find((w) => w.spec.id === 'vps-1')!;
    expect([vps.spec.template, vps.observed?.state]).toEqual(['debian-12', 'running']);
    await eventually(
      'vps-1 to run init, sshd and nginx (master and worker): 4 processes or more',
      async () => (((await http(`${job.url}/v1/workloads/vps-1`, { token: job.token })).body as WorkloadView).observed?.usage?.pids ?? 0) >= 4,
      30_000,
    );
    for (const w of workloads) {
      expect(w.phase).toBe('running');
      expect(w.observed?.usage?.memoryBytes).toBeGreaterThan(2 ** 20);
    }
    const containerPids = workloads.map((w) => w.observed!.pid!);

    // HA admission control is on in the demo: two HA workloads of 60 % of a host go in, a third
    // would leave no host able to take either of the others if its host failed
    const mib = Math.floor((hosts[0]!.capacity.memory.totalBytes / 2 ** 20) * 0.6);
    const big = (n: number) => ({
      id: `big-${n}`,
      template: 'busybox',
      command: ['/usr/bin/ferry-workload', '--port', '7000'],
      resources: { vcpus: 0.25, memoryMiB: mib, diskMiB: 64 },
      networks: [{ network: 'prod', address: `10.77.0.${200 + n}` }],
      pool: 'shared',
      ha: { enabled: true, priority: 1 },
    });
    for (const n of [1, 2]) {
      expect((await http(`${job.url}/v1/workloads`, { token: job.token, method: 'POST', body: big(n) })).status).toBe(202);
      await eventually(
        `big-${n} running`,
        async () => {
          const w = (await http(`${job.url}/v1/workloads/big-${n}`, { token: job.token })).body as WorkloadView;
          if (w.phase === 'failed') throw new Error(`big-${n} failed: ${w.error?.message}`);
          return w.phase === 'running';
        },
        60_000,
      );
    }
    const refused = await http(`${job.url}/v1/workloads`, { token: job.token, method: 'POST', body: big(3) });
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({ code: 'CONFLICT', details: { code: 'HA_ADMISSION' } });
    expect((refused.body as { message: string }).message).toMatch(/HA admission control refuses big-3: if host-\d failed, its largest HA workload \(\d+ MiB\) would fit on no other host/);
    expect((await http(`${job.url}/v1/workloads/big-3`, { token: job.token })).status).toBe(404); // nothing was created

    job.child.kill('SIGTERM');
    const result = await job.child;
    expect(result.exitCode, `signal ${result.signal}; output:\n${job.output()}`).toBe(0);
    expect(job.output()).toContain('all processes stopped (checked by pid)');
    expect(job.output()).toMatch(/lab [0-9a-f]{4} removed/);
    for (const p of job.run.processes) expect(isRunning(p.pid), `${p.name} (${p.pid})`).toBe(false);
    for (const pid of containerPids) expect(isRunning(pid), `container ${pid}`).toBe(false);
  });

  it('keeps the cluster state across a restart from the same state directory (persistent Redis), and recreates the demo containers of the old lab', async () => {
    const first = await startMainJob();
    expect(first.output()).toContain('persistent: AOF (appendfsync everysec)');
    const made = await http(`${first.url}/v1/tokens`, { token: first.token, method: 'POST', body: { name: 'kept-token', role: 'viewer' } });
    expect(made.status).toBe(201);
    first.child.kill('SIGTERM');
    expect((await first.child).exitCode).toBe(0);
    expect(existsSync(join(first.stateDir, 'redis', 'appendonlydir'))).toBe(true);

    const second = await startMainJob(first.stateDir);
    try {
      const tokens = ((await http(`${second.url}/v1/tokens`, { token: second.token })).body as { tokens: Array<{ name: string }> }).tokens;
      expect(tokens.map((x) => x.name)).toContain('kept-token');
      expect(second.output()).toContain('state kept from the previous run');
      const workloads = ((await http(`${second.url}/v1/workloads`, { token: second.token })).body as { workloads: WorkloadView[] }).workloads;
      expect(workloads).toHaveLength(7);
      for (const w of workloads) expect([w.spec.id, w.phase, w.observed?.state]).toEqual([w.spec.id, 'running', 'running']);
    } finally {
      second.child.kill('SIGTERM');
      expect((await second.child).exitCode).toBe(0);
    }
  });

  it('leaves no process behind even when the supervisor itself is killed with SIGKILL, and the next lab removes the old one', async () => {
    const job = await startMainJob();
    const workloads = ((await http(`${job.url}/v1/workloads`, { token: job.token })).body as { workloads: WorkloadView[] }).workloads;
    const containerPids = workloads.map((w) => w.observed!.pid!);
    job.child.kill('SIGKILL');
    await job.child;
    await eventually('every child to exit', async () => job.run.processes.every((p) => !isRunning(p.pid)), 15_000);
    // Containers are not the supervisor's children: the lab (its hosts' namespaces, the journal in
    // /run/ferry-labs) stays until the next lab is made, even when the state directory is gone by
    // then. Whether the demo's HA containers still run at this point is not this test's business:
    // the hosts' fence guards stop them once the dead agents' leases lapse (5 s).
    expect(existsSync(`/run/ferry-labs/${job.labId}.json`)).toBe(true);
    expect((await execa('ip', ['netns', 'list'])).stdout).toContain(`ferry-lab-${job.labId}-`);
    rmSync(job.stateDir, { recursive: true, force: true });
    const removed = await Lab.removeLeftovers(createLogger('test').child({}, { level: 'error' }));
    expect(removed).toBeGreaterThanOrEqual(1);
    expect(existsSync(`/run/ferry-labs/${job.labId}.json`)).toBe(false);
    for (const pid of containerPids) expect(isRunning(pid), `container ${pid}`).toBe(false);
    const namespaces = (await execa('ip', ['netns', 'list'])).stdout;
    expect(namespaces).not.toContain(`fl${job.labId}-`);
    expect(namespaces).not.toContain(`ferry-lab-${job.labId}-`);
    expect((await execa('ip', ['-o', 'link', 'show'])).stdout).not.toContain(`fl${job.labId}`);
    expect(existsSync(`/sys/fs/cgroup/memory/ferry-lab-${job.labId}`)).toBe(false);
  });
});
