import { mkdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { NetworkReport } from '@ferry/protocol';
import type { Logger } from '@ferry/runtime';
import { cgroupParentOf, type AgentHostConfig } from './config.ts';
import { cgroupVersion } from './containers/cgroups.ts';
import { ContainerManager } from './containers/manager.ts';
import { ContainerSuspends } from './containers/suspend.ts';
import { Criu } from './containers/criu.ts';
import { interfaceExists } from './containers/network.ts';
import { RecordStore } from './containers/records.ts';
import { Runc } from './containers/runc.ts';
import { TemplateRegistry } from './containers/templates.ts';
import { MigrationManager } from './migration/manager.ts';

/** Networks whose bridge exists on this host right now; re-checked at most every `everyMs`. */
export class NetworkMonitor {
  private available: NetworkReport[] = [];
  private checkedAt = 0;
  private readonly missing = new Set<string>();

  constructor(
    private readonly configured: NetworkReport[],
    private readonly log: Logger,
    private readonly everyMs = 5_000,
  ) {}

  async refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.checkedAt < this.everyMs) return;
    this.checkedAt = Date.now();
    const present = await Promise.all(this.configured.map((n) => interfaceExists(n.bridge)));
    this.available = this.configured.filter((network, i) => {
      if (present[i]) {
        if (this.missing.delete(network.name)) this.log.info({ network: network.name }, 'network bridge is back');
        return true;
      }
      if (!this.missing.has(network.name)) this.log.warn({ network: network.name, bridge: network.bridge }, 'network bridge missing; not reported');
      this.missing.add(network.name);
      return false;
    });
  }

  current(): NetworkReport[] {
    return this.available;
  }
}

export interface HostRuntime {
  templates: TemplateRegistry;
  networks: NetworkMonitor;
  containers: ContainerManager;
  migrations: MigrationManager;
  /** suspend to disk and resume (`container.suspend`, `container.resume`) */
  suspends: ContainerSuspends;
  /** the configured CRIU: runc's, the migrations' daemons' and the probe's */
  criu: Criu;
}

/** The pieces that run containers on this host, ready to use. */
export async function openHostRuntime(config: AgentHostConfig, log: Logger): Promise<HostRuntime> {
  const containersDir = join(config.dataDir, 'containers');
  const runcRoot = join(config.dataDir, 'runc');
  await mkdir(containersDir, { recursive: true });
  await mkdir(runcRoot, { recursive: true });
  const templates = new TemplateRegistry(config.templatesDir, log);
  await templates.refresh();
  const networks = new NetworkMonitor(config.networks, log);
  await networks.refresh(true);
  const criu = new Criu(config.criuPath);
  const containers = new ContainerManager({
    hostId: config.hostId,
    cgroupParent: cgroupParentOf(config),
    netnsPrefix: config.netnsPrefix,
    pools: config.pools,
    runc: new Runc(runcRoot, config.runcPath, criu),
    records: new RecordStore(containersDir, log),
    templates,
    networks: () => networks.current(),
    diskUsageIntervalMs: config.diskUsageIntervalMs,
    log,
  });
  await containers.init();
  const migrations = new MigrationManager({
    hostId: config.hostId,
    address: config.address,
    dataDir: config.dataDir,
    criu,
    daemonDeadlineMs: config.migrationDaemonDeadlineMs,
    containers,
    log,
  });
  const suspends = new ContainerSuspends({ hostId: config.hostId, pools: config.pools, containers, log });
  return { templates, networks, containers, migrations, suspends, criu };
}

/** Removes the (empty) cgroup directories above this host's containers, bottom up. */
export async function removeCgroupParent(config: AgentHostConfig): Promise<void> {
  const parts = cgroupParentOf(config).split('/').filter(Boolean);
  const roots = cgroupVersion() === 2 ? ['/sys/fs/cgroup'] : ['memory', 'cpu', 'cpuacct', 'pids', 'cpuset', 'devices', 'freezer', 'blkio', 'systemd'].map((c) => `/sys/fs/cgroup/${c}`);
  for (const root of roots) {
    for (let depth = parts.length; depth > 0; depth--) {
      await rmdir(join(root, ...parts.slice(0, depth))).catch(() => undefined);
    }
  }
}
