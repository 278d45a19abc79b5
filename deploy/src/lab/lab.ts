import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { intToIpv4, parseCidr } from '@ferry/core';
import type { Logger } from '@ferry/runtime';
import { repoRoot, serviceEntry } from '../paths.ts';
import { isRunning, isSameProcessAlive } from '@ferry/runtime';
import { LabJournal, orphanedLabRecords, removeLabRecord, type LabItem } from './records.ts';

export interface LabNetwork {
  name: string;
  subnet: string;
  /** the bridge's name inside every host */
  bridge: string;
}

export interface LabHost {
  id: string;
  index: number;
  netns: string;
  /** address on the management network: NATS, Redis, and agent-to-agent transfers */
  address: string;
  dir: string;
  agentConfigFile: string;
  networks: Array<LabNetwork & { hostAddress: string }>;
}

export interface LabOptions {
  stateDir: string;
  hostIds: string[];
  networks: LabNetwork[];
  /** the NATS URL agents get (reachable on the management network) */
  natsUrl?: string;
  reportIntervalMs?: number;
  /**
   * the hosts' local pools and the shared pool on loop-mounted btrfs images with quota groups
   * (deploy/pool-image): copy-on-write roots and enforced disk limits; plain directories otherwise.
   * FERRY_LAB_QUOTA_POOLS=1 turns it on for every lab (a whole suite on quota pools).
   */
  quotaPools?: boolean;
  log: Logger;
}

const CGROUP_CONTROLLERS_V1 = ['memory', 'cpu', 'cpuacct', 'pids', 'cpuset', 'devices', 'freezer', 'blkio', 'systemd'];

const ip = (args: string[]) => execa('ip', args, { timeout: 30_000 });

/** A free 10.250.X.0/24 for the management network (none of this machine's addresses in it). */
async function freeManagementSubnet(): Promise<number> {
  const { stdout } = await ip(['-4', '-o', 'addr', 'show']);
  const { stdout: routes } = await ip(['-4', 'route', 'show', 'table', 'all']);
  const used = new Set<number>();
  for (const match of `${stdout}\n${routes}`.matchAll(/\b10\.250\.(\d+)\./g)) used.add(Number(match[1]));
  const free = Array.from({ length: 256 }, (_, i) => i).filter((x) => !used.has(x));
  if (free.length === 0) throw new Error('no free 10.250.X.0/24 for a lab management network');
  return free[Math.floor(Math.random() * free.length)]!;
}

/**
 * N test hosts on one machine: each a network namespace with its own management address, a
 * bridge per cluster network (joined across hosts through one root-namespace bridge per network,
 * so each network is one L2 segment), a local storage pool and the lab's shared pool, and an agent
 * config. Everything created is journaled first and torn down from the journal, never by name.
 */
export class Lab {
  readonly hosts: LabHost[] = [];
  readonly gateway: string;
  readonly sharedPool: string;
  readonly dir: string;
  private readonly journal: LabJournal;

  private constructor(
    readonly id: string,
    private readonly options: LabOptions,
    subnetIndex: number,
  ) {
    this.dir = join(options.stateDir, `lab-${id}`);
    mkdirSync(this.dir, { recursive: true });
    this.journal = new LabJournal(id);
    this.gateway = `10.250.${subnetIndex}.1`;
    this.sharedPool = join(this.dir, 'shared-pool');
  }

  /** Tears down labs whose creating process died (a killed test run or `npm start`). */
  static async removeLeftovers(log: Logger): Promise<number> {
    const orphans = orphanedLabRecords();
    for (const record of orphans) {
      log.warn({ lab: record.labId, items: record.items.length }, 'removing a lab left by a dead process');
      await tearDown(record.items, log);
      removeLabRecord(record.labId);
    }
    return orphans.length;
  }

  static async create(options: LabOptions): Promise<Lab> {
    await Lab.removeLeftovers(options.log);
    const lab = new Lab(randomBytes(3).toString('hex').slice(0, 4), options, await freeManagementSubnet());
    try {
      await lab.build();
    } catch (err) {
      await lab.destroy().catch((cleanupErr: unknown) => options.log.error({ err: cleanupErr }, 'lab cleanup after a failed build failed'));
      throw err;
    }
    return lab;
  }

  private record(item: LabItem): void {
    this.journal.add(item);
  }

  private async build(): Promise<void> {
    const { options } = this;
    const mgmtBridge = `fl${this.id}m`;
    this.record({ kind: 'dir', path: this.dir });
    this.record({ kind: 'link', name: mgmtBridge });
    await ip(['link', 'add', mgmtBridge, 'type', 'bridge']);
    await ip(['addr', 'add', `${this.gateway}/24`, 'dev', mgmtBridge]);
    await ip(['link', 'set', mgmtBridge, 'up']);
    const fabrics = options.networks.map((_, k) => `fl${this.id}n${k}`);
    for (const fabric of fabrics) {
      this.record({ kind: 'link', name: fabric });
      await ip(['link', 'add', fabric, 'type', 'bridge']);
      await ip(['link', 'set', fabric, 'up']);
    }
    mkdirSync(this.sharedPool, { recursive: true });
    if (this.quotaPools) await this.mountPoolImage(join(this.dir, 'shared-pool.img'), this.sharedPool);
    const cgroupRoot = `/ferry-lab-${this.id}`;
    this.record({ kind: 'cgroup', path: cgroupRoot });
    const netnsPrefix = `fl${this.id}`;
    this.record({ kind: 'netns-prefix', prefix: `${netnsPrefix}-` });

    for (const [i, hostId] of options.hostIds.entries()) {
      const index = i + 1;
      const netns = `ferry-lab-${this.id}-${hostId}`;
      const address = this.gateway.replace(/\.1$/, `.${10 + index}`);
      const dir = join(this.dir, 'hosts', hostId);
      this.record({ kind: 'netns', name: netns });
      await ip(['netns', 'add', netns]);
      await ip(['-n', netns, 'link', 'set', 'lo', 'up']);
      const mgmtLink = `fl${this.id}h${index}m`;
      this.record({ kind: 'link', name: mgmtLink });
      await ip(['link', 'add', mgmtLink, 'type', 'veth', 'peer', 'name', 'mgmt0', 'netns', netns]);
      await ip(['link', 'set', mgmtLink, 'master', mgmtBridge, 'up']);
      await ip(['-n', netns, 'addr', 'add', `${address}/24`, 'dev', 'mgmt0']);
      await ip(['-n', netns, 'link', 'set', 'mgmt0', 'up']);

      const networks: LabHost['networks'] = [];
      for (const [k, network] of options.networks.entries()) {
        const subnet = parseCidr(network.subnet);
        const hostAddress = `${intToIpv4(subnet.network + subnet.size - 1 - index)}/${subnet.prefix}`;
        await ip(['-n', netns, 'link', 'add', network.bridge, 'type', 'bridge']);
        await ip(['-n', netns, 'link', 'set', network.bridge, 'up']);
        await ip(['-n', netns, 'addr', 'add', hostAddress, 'dev', network.bridge]);
        const uplink = `fl${this.id}h${index}n${k}`;
        this.record({ kind: 'link', name: uplink });
        await ip(['link', 'add', uplink, 'type', 'veth', 'peer', 'name', `up${k}`, 'netns', netns]);
        await ip(['link', 'set', uplink, 'master', fabrics[k]!, 'up']);
        await ip(['-n', netns, 'link', 'set', `up${k}`, 'master', network.bridge, 'up']);
        networks.push({ ...network, hostAddress });
      }

      mkdirSync(join(dir, 'pool'), { recursive: true });
      if (this.quotaPools) await this.mountPoolImage(join(dir, 'pool.img'), join(dir, 'pool'));
      const agentConfigFile = join(dir, 'agent.json');
      writeFileSync(
        agentConfigFile,
        JSON.stringify(
          {
            hostId,
            natsUrl: options.natsUrl ?? `nats://${this.gateway}:4222`,
            reportIntervalMs: options.reportIntervalMs ?? 1000,
            address,
            dataDir: join(dir, 'data'),
            cgroupParent: `${cgroupRoot}/${hostId}`,
            netnsPrefix,
            pools: [
              { id: 'local', path: join(dir, 'pool'), shared: false },
              { id: 'shared', path: this.sharedPool, shared: true },
            ],
            networks: networks.map(({ name, bridge, subnet, hostAddress }) => ({ name, bridge, subnet, hostAddress })),
          },
          null,
          2,
        ),
      );
      this.record({ kind: 'agent', config: agentConfigFile });
      this.hosts.push({ id: hostId, index, netns, address, dir, agentConfigFile, networks });
    }
  }

  private get quotaPools(): boolean {
    return this.options.quotaPools ?? process.env.FERRY_LAB_QUOTA_POOLS === '1';
  }

  /** A sparse btrfs image with quota groups mounted on `path` (journaled first: teardown unmounts it). */
  private async mountPoolImage(image: string, path: string): Promise<void> {
    this.record({ kind: 'mount', path });
    await execa(join(repoRoot, 'deploy', 'pool-image'), [image, path, '32G'], { timeout: 60_000 });
  }

  host(id: string): LabHost {
    const host = this.hosts.find((h) => h.id === id);
    if (!host) throw new Error(`no lab host ${id}`);
    return host;
  }

  /**
   * Cuts a host off (or reconnects it): its management link and every cluster-network uplink go
   * down (or up) on the root side. Its processes keep running: a network partition.
   */
  async setConnected(hostId: string, connected: boolean): Promise<void> {
    const host = this.host(hostId);
    const links = [`fl${this.id}h${host.index}m`, ...this.options.networks.map((_, k) => `fl${this.id}h${host.index}n${k}`)];
    for (const link of links) await ip(['link', 'set', link, connected ? 'up' : 'down']);
  }

  /**
   * Cuts a host off the shared pool's heartbeat channel (or reconnects it). The lab's shared pool
   * is a directory every lab host reaches, so what a real host loses with its storage network is
   * made the one way that matters to the heartbeat: the host's heartbeat directory in the pool
   * becomes a file, and every write of its heartbeat there fails (ENOTDIR/EEXIST) — as writes to an
   * unreachable NFS export do. With setConnected(…, false): a host cut off from everything.
   */
  async setStorageConnected(hostId: string, connected: boolean): Promise<void> {
    const dir = join(this.sharedPool, '.ferry', 'heartbeats', this.host(hostId).id);
    // The host's agent keeps writing its heartbeat meanwhile: a file it adds while the directory
    // is being removed fails the removal (ENOTEMPTY), and a directory it makes again before the
    // file is written fails the write (EEXIST/EISDIR). Either way: again.
    for (let attempt = 1; ; attempt++) {
      try {
        rmSync(dir, { recursive: true, force: true });
        if (!connected) {
          mkdirSync(join(this.sharedPool, '.ferry', 'heartbeats'), { recursive: true });
          writeFileSync(dir, 'the lab cut this host off the shared pool\n', { flag: 'wx' });
        }
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (attempt >= 50 || !['ENOTEMPTY', 'EEXIST', 'EISDIR'].includes(code)) throw err;
      }
    }
  }

  /**
   * Kills every process of a host but its agent: the fence guard (first, so it cannot react) and
   * every container process (its cgroup subtree). With its agent, a host dying.
   */
  async killHostProcesses(hostId: string): Promise<number> {
    const guard = this.fenceGuardPid(hostId);
    if (guard !== null) process.kill(guard, 'SIGKILL');
    return (await killCgroupTree(`/ferry-lab-${this.id}/${hostId}`)) + (guard === null ? 0 : 1);
  }

  /** The pid of a host's living fence guard (from the pidfile its agent's guard keeps), or null. */
  fenceGuardPid(hostId: string): number | null {
    try {
      const ref = JSON.parse(readFileSync(join(this.host(hostId).dir, 'data', 'fence-guard.pid'), 'utf8')) as { pid: number; startTime: string | null };
      return ref.startTime !== null && isSameProcessAlive(ref.pid, ref.startTime) ? ref.pid : null;
    } catch {
      return null;
    }
  }

  /** Command and arguments that run `command` inside a lab host's network namespace. */
  inHost(hostId: string, command: string, args: string[]): [string, string[]] {
    return ['nsenter', [`--net=/run/netns/${this.host(hostId).netns}`, '--', command, ...args]];
  }

  exec(hostId: string, command: string, args: string[], options: { timeoutMs?: number; input?: string } = {}) {
    const [cmd, argv] = this.inHost(hostId, command, args);
    return execa(cmd, argv, { timeout: options.timeoutMs ?? 30_000, reject: false, ...(options.input === undefined ? {} : { input: options.input }) });
  }

  /** Destroys containers, then links, namespaces, cgroups and directories, from the journal. */
  async destroy(): Promise<void> {
    await tearDown(this.journal.record.items, this.options.log);
    this.journal.close();
  }
}

async function tearDown(items: LabItem[], log: Logger): Promise<void> {
  const problems: string[] = [];
  // Containers first: they hold namespaces, veths on the hosts' bridges, and cgroups.
  for (const item of items) {
    if (item.kind !== 'agent' || !existsSync(item.config)) continue;
    const run = await execa(process.execPath, ['--import', 'tsx', serviceEntry('agent'), '--config', item.config, '--destroy-all'], {
      reject: false,
      timeout: 120_000,
      cwd: repoRoot,
    });
    if (run.exitCode !== 0) problems.push(`destroy-all for ${item.config}: ${run.stderr.trim().split('\n').pop()}`);
  }
  for (const item of [...items].reverse()) {
    if (item.kind === 'link') {
      const r = await execa('ip', ['link', 'del', item.name], { reject: false });
      if (r.exitCode !== 0 && !/Cannot find device/.test(r.stderr)) problems.push(`ip link del ${item.name}: ${r.stderr.trim()}`);
    } else if (item.kind === 'netns') {
      const r = await execa('ip', ['netns', 'del', item.name], { reject: false });
      if (r.exitCode !== 0 && !/No such file/.test(r.stderr)) problems.push(`ip netns del ${item.name}: ${r.stderr.trim()}`);
    } else if (item.kind === 'cgroup') {
      await killCgroupTree(item.path);
      removeCgroupTree(item.path);
    } else if (item.kind === 'netns-prefix') {
      // Containers' namespaces whose agent records were lost with the state directory.
      const { stdout } = await execa('ip', ['netns', 'list'], { reject: false });
      for (const name of stdout.split('\n').map((line) => line.split(' ')[0] ?? '')) {
        if (name.startsWith(item.prefix)) await execa('ip', ['netns', 'del', name], { reject: false });
      }
    } else if (item.kind === 'mount') {
      const mounted = await execa('mountpoint', ['-q', item.path], { reject: false });
      if (mounted.exitCode === 0) {
        const r = await execa('umount', [item.path], { reject: false });
        // still busy (a process of a lost container): detach it lazily, the loop device follows
        if (r.exitCode !== 0) await execa('umount', ['-l', item.path], { reject: false });
      }
    } else if (item.kind === 'dir') {
      rmSync(item.path, { recursive: true, force: true });
    }
  }
  if (problems.length > 0) {
    log.error({ problems }, 'lab teardown left something behind');
    throw new Error(`lab teardown incomplete:\n  ${problems.join('\n  ')}`);
  }
}

const cgroupRoots = () => (existsSync('/sys/fs/cgroup/cgroup.controllers') ? ['/sys/fs/cgroup'] : CGROUP_CONTROLLERS_V1.map((c) => `/sys/fs/cgroup/${c}`));

/**
 * Kills what still runs in the lab's cgroups: containers whose agent data was lost (the agents'
 * own teardown above normally leaves nothing here). The lab's cgroup is its own record.
 */
async function killCgroupTree(path: string): Promise<number> {
  const pids = new Set<number>();
  const collect = (dir: string) => {
    try {
      for (const line of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line) pids.add(Number(line));
    } catch {
      return;
    }
    for (const entry of readdirSafe(dir)) if (isDir(join(dir, entry))) collect(join(dir, entry));
  };
  for (const root of cgroupRoots()) collect(join(root, path));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone already */
    }
  }
  for (let waited = 0; waited < 5_000 && [...pids].some((pid) => isRunning(pid)); waited += 50) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return pids.size;
}

/** Removes a cgroup directory and its (empty) children in every hierarchy, deepest first. */
function removeCgroupTree(path: string): void {
  for (const root of cgroupRoots()) {
    const dir = join(root, path);
    if (!existsSync(dir)) continue;
    const run = (d: string) => {
      for (const entry of readdirSafe(d)) if (isDir(join(d, entry))) run(join(d, entry));
      try {
        rmdirSync(d);
      } catch {
        /* still in use: reported by the caller's checks */
      }
    };
    run(dir);
  }
}

const readdirSafe = (dir: string): string[] => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

const isDir = (path: string): boolean => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};
