import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, repoRoot, Supervisor, type ManagedProcess } from '@ferry/deploy';
import type { HostView, MigrationRecord, WorkloadSpecInput, WorkloadView } from '@ferry/protocol';
import { createLogger, freePort, requestJson } from '@ferry/runtime';
import { eventually } from './helpers/cluster.ts';
import { PROD, skipLab } from './helpers/lab.ts';
import { expectTimersFire, talk } from './helpers/workload.ts';

/**
 * docs/install.md, walked through on this machine: the packages built and installed with
 * `dpkg -i`, `ferry-admin init`, the control plane's services started from their units' own
 * command lines (as the units' user), two lab hosts joined with `ferry-agent join` and their
 * agents and fence guards started from their units' command lines, then a workload created and
 * live-migrated with the packaged `ferry`. Everything installed is purged afterwards.
 */
const PACKAGES = ['ferry-common', 'ferry-control', 'ferry-agent', 'ferry-cli'];
const UNITS = '/lib/systemd/system';
const HOSTS = ['h1', 'h2'];

/** The parts of a unit file that say how its service runs. */
interface UnitCommand {
  execStart: string[];
  environment: Record<string, string>;
  user: string | null;
  workingDirectory: string | null;
}

function readUnit(name: string): UnitCommand {
  const text = readFileSync(join(UNITS, name), 'utf8');
  const values = (key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
  const environment: Record<string, string> = {};
  for (const file of values('EnvironmentFile')) {
    for (const line of readFileSync(file.replace(/^-/, ''), 'utf8').split('\n')) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (m) environment[m[1]!] = m[2]!;
    }
  }
  for (const assignment of values('Environment')) {
    const [k, ...v] = assignment.split('=');
    environment[k!] = v.join('=');
  }
  const [execStart] = values('ExecStart');
  return { execStart: execStart!.split(/\s+/), environment, user: values('User')[0] ?? null, workingDirectory: values('WorkingDirectory')[0] ?? null };
}

const installed = async (pkg: string) => (await execa('dpkg-query', ['-W', '-f=${Status}', pkg], { reject: false })).stdout.includes('install ok installed');

describe.skipIf(skipLab())('installing Ferry on real hosts (packages, init, join, a migration)', () => {
  let work: string;
  let lab: Lab;
  let supervisor: Supervisor;
  let apiUrl = '';
  let adminToken = '';
  const agents = new Map<string, ManagedProcess>();
  const log = createLogger('install-test').child({}, { level: 'warn' });
  const ca = () => readFileSync('/etc/ferry/ca.crt', 'utf8');
  const api = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> =>
    (await requestJson({ method, url: `${apiUrl}${path}`, token: adminToken, ca: ca(), body })) as { status: number; body: T };
  /** the packaged CLI, as an operator on the control-plane machine runs it */
  const ferry = (args: string[]) => execa('/usr/bin/ferry', args, { reject: false, env: { FERRY_API_URL: apiUrl, FERRY_API_TOKEN: adminToken } });

  /** a unit's service, started from the unit's command line as the unit's user */
  const startUnit = (name: string, replace: Record<string, string> = {}, inHost?: string): ManagedProcess => {
    const unit = readUnit(name);
    const args = unit.execStart.map((a) => replace[a] ?? a);
    const asUser = unit.user ? ['setpriv', `--reuid=${unit.user}`, `--regid=${unit.user}`, '--init-groups', '--'] : [];
    const [command, ...rest] = [...asUser, ...args];
    const [cmd, cmdArgs] = inHost ? lab.inHost(inHost, command!, rest) : [command!, rest];
    return supervisor.spawn(`${name.replace('.service', '')}${inHost ? `-${inHost}` : ''}`, cmd, cmdArgs, { env: unit.environment, ...(unit.workingDirectory ? { cwd: unit.workingDirectory } : {}) });
  };

  beforeAll(async () => {
    for (const path of ['/etc/ferry', '/var/lib/ferry']) {
      if (existsSync(path)) throw new Error(`${path} exists: this machine has a Ferry installation this test would overwrite; remove it first`);
    }
    for (const pkg of PACKAGES) if (await installed(pkg)) throw new Error(`${pkg} is installed already: this test installs and purges it`);
    work = mkdtempSync(join(tmpdir(), 'ferry-install-'));
    const debs = join(work, 'debs');
    const build = await execa('bash', [join(repoRoot, 'deploy', 'packaging', 'build-debs'), debs], { cwd: repoRoot, reject: false });
    expect(build.exitCode, build.stderr).toBe(0);
    const files = readdirSync(debs).filter((f) => f.endsWith('.deb'));
    const install = await execa(
      'dpkg',
      [
        '-i',
        ...PACKAGES.map((p) =>
          join(
            debs,
            files.find((f) => f.startsWith(`${p}_`))!,
          ),
        ),
      ],
      { reject: false },
    );
    expect(install.exitCode, `${install.stdout}\n${install.stderr}`).toBe(0);

    supervisor = new Supervisor(join(work, 'run.json'), join(work, 'logs'), log);
    await supervisor.claim();
    lab = await Lab.create({ stateDir: work, hostIds: HOSTS, networks: [PROD], reportIntervalMs: 500, log });
  }, 300_000);

  afterAll(async () => {
    // every step, whatever the one before did: nothing of the installation may stay
    await supervisor?.stopAll().catch((err: unknown) => console.warn(`stopping the services: ${String(err)}`));
    await lab?.destroy().catch((err: unknown) => console.warn(`lab teardown: ${String(err)}`));
    const purge = await execa('dpkg', ['--purge', ...PACKAGES], { reject: false });
    if (purge.exitCode !== 0) console.warn(`dpkg --purge: ${purge.stderr}`);
    rmSync('/etc/ferry', { recursive: true, force: true });
    rmSync('/var/lib/ferry', { recursive: true, force: true });
    if ((await execa('id', ['ferry'], { reject: false })).exitCode === 0) await execa('userdel', ['ferry'], { reject: false });
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  it('init sets up the control plane, hosts join it, and a workload is created and live-migrated', async () => {
    // 1. the control plane on this machine, on the lab's management address
    const [apiPort, natsPort, redisPort] = await Promise.all([freePort(lab.gateway), freePort(lab.gateway), freePort('127.0.0.1')]);
    const init = await execa('/usr/sbin/ferry-admin', ['init', '--address', lab.gateway, '--api-port', String(apiPort), '--nats-port', String(natsPort), '--redis-port', String(redisPort)], {
      reject: false,
    });
    expect(init.exitCode, init.stderr).toBe(0);
    console.log(init.stdout.replace(/ferry_[A-Za-z0-9_-]{43}/, 'ferry_<admin token>'));
    adminToken = /^\s+(ferry_[A-Za-z0-9_-]{43})$/m.exec(init.stdout)![1]!;
    apiUrl = `https://${lab.gateway}:${apiPort}`;
    // a second init changes nothing
    const again = await execa('/usr/sbin/ferry-admin', ['init', '--address', lab.gateway], { reject: false });
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain('holds a control plane already');
    // owned by the units' user, secrets private
    expect((await execa('stat', ['-c', '%U %a', '/var/lib/ferry/control'])).stdout).toBe('ferry 700');
    expect((await execa('stat', ['-c', '%U %a', '/var/lib/ferry/control/ca.key'])).stdout).toBe('ferry 600');

    for (const unit of ['ferry-nats.service', 'ferry-redis.service', 'ferry-scheduler.service', 'ferry-api.service']) startUnit(unit);
    await eventually('the API over HTTPS', async () => (await api('GET', '/healthz')).status === 200, 30_000);
    // plain HTTP is not served, and a client that does not know the cluster CA refuses the API
    expect(await requestJson({ method: 'GET', url: `${apiUrl}/healthz` }).catch((err: Error) => err.message)).toMatch(/self.signed|unable to verify|certificate/i);

    // 2. each host joins with its own one-time token, run on the host, then its units start
    for (const id of HOSTS) {
      const token = await execa('/usr/sbin/ferry-admin', ['join-token', '--quiet']);
      const host = lab.host(id);
      const [cmd, args] = lab.inHost(id, '/usr/sbin/ferry-agent', [
        'join',
        apiUrl,
        token.stdout.trim(),
        '--host-id',
        id,
        '--address',
        host.address,
        '--config',
        host.agentConfigFile,
        '--secrets-dir',
        join(host.dir, 'secrets'),
      ]);
      const joined = await execa(cmd, args, { reject: false });
      expect(joined.exitCode, joined.stderr).toBe(0);
      console.log(joined.stdout);
      const dataDir = JSON.parse(readFileSync(host.agentConfigFile, 'utf8')).dataDir as string;
      mkdirSync(dataDir, { recursive: true });
      startUnit('ferry-fence-guard.service', { '/var/lib/ferry/agent': dataDir }, id);
      agents.set(id, startUnit('ferry-agent.service', { '/etc/ferry/agent.json': host.agentConfigFile }, id));
    }
    const hosts = await ferry(['hosts']);
    await eventually(
      'both hosts up',
      async () => {
        const list = await api<{ hosts: HostView[] }>('GET', '/v1/hosts');
        return HOSTS.every((id) => list.body.hosts.find((h) => h.id === id)?.state === 'up');
      },
      60_000,
    );
    console.log((await ferry(['hosts'])).stdout || hosts.stderr);

    // 3. a workload, created through the API and migrated live with the packaged CLI
    const spec: WorkloadSpecInput = {
      id: 'web',
      template: 'busybox',
      command: ['/usr/bin/ferry-workload', '--mem', '16', '--port', '7000'],
      resources: { vcpus: 0.25, memoryMiB: 64, diskMiB: 256 },
      networks: [{ network: PROD.name, address: '10.77.0.60' }],
      pool: 'local',
    };
    expect((await api('POST', '/v1/workloads', spec)).status).toBe(202);
    const placed = await eventually(
      'web running',
      async () => {
        const w = (await api<WorkloadView>('GET', '/v1/workloads/web')).body;
        return w.phase === 'running' && w.observed?.state === 'running' && w.hostId;
      },
      60_000,
    );
    const [source, destination] = placed === 'h1' ? ['h1', 'h2'] : ['h2', 'h1'];
    for (let i = 0; i < 3; i++) await talk(lab, destination, '10.77.0.60', 'inc');
    const migrate = await ferry(['migrate', 'web', '--to', destination]);
    console.log(migrate.stdout);
    expect(migrate.exitCode, migrate.stderr).toBe(0);
    const moved = (await api<WorkloadView>('GET', '/v1/workloads/web')).body;
    expect(moved).toMatchObject({ phase: 'running', hostId: destination });
    const migrations = (await api<{ migrations: MigrationRecord[] }>('GET', '/v1/migrations')).body.migrations;
    expect(migrations.find((m) => m.workloadId === 'web')).toMatchObject({ state: 'completed', source, destination });
    // what its users notice: its memory and its timers came along, and it runs on one host only
    expect(await talk(lab, source, '10.77.0.60', 'get')).toBe('3');
    expect(JSON.parse(await talk(lab, source, '10.77.0.60', 'verify'))).toMatchObject({ ok: true, bad: 0 });
    await expectTimersFire(lab, source, '10.77.0.60');
    const record = (id: string) => join(lab.host(id).dir, 'data', 'containers', 'web');
    await eventually('the source copy cleaned up', async () => !existsSync(record(source)), 30_000);
    expect(existsSync(record(destination))).toBe(true);

    // 4. removing a host revokes its identity: its agent is cut off at once
    await supervisor.stop(agents.get(source)!);
    await eventually(`${source} down`, async () => (await api<HostView>('GET', `/v1/hosts/${source}`)).body.state === 'down', 60_000);
    const removed = await ferry(['hosts', 'remove', source]);
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect(removed.stdout).toContain('its NATS identity is revoked');
    expect(existsSync(`/var/lib/ferry/control/nats-identities/agent-${source}.json`)).toBe(false);

    // 5. cleanup through the API: nothing of the workload left on any host
    expect((await api('DELETE', '/v1/workloads/web')).status).toBe(202);
    await eventually('web deleted', async () => (await api('GET', '/v1/workloads/web')).status === 404, 60_000);
  }, 400_000);
});
