import { z } from 'zod';
import { CpuInfo, HostId, Name, NetworkReport } from '@ferry/protocol';
import { loadConfig, NATS_CONFIG_ENV, NATS_CONFIG_FIELDS } from '@ferry/runtime';

export const PoolConfig = z.object({
  id: Name,
  path: z.string().startsWith('/', 'must be an absolute path'),
  /** what the operator claims; the scheduler proves shared-ness with a probe file before relying on it */
  shared: z.boolean().default(false),
});
export type PoolConfig = z.infer<typeof PoolConfig>;

/** Everything but how the agent reaches NATS: what the host side needs (decommissioning with --destroy-all too). */
const AgentHostFields = z.object({
  hostId: HostId,
  reportIntervalMs: z.coerce.number().int().min(50).max(60_000).default(1000),
  /** how often CRIU's version and features are probed again (they change only with upgrades) */
  criuProbeIntervalMs: z.coerce.number().int().min(1000).default(600_000),
  /** the CRIU binary: runc's `--criu`, and what runs page servers and lazy-pages daemons */
  criuPath: z.string().min(1).default('criu'),
  /**
   * how long a migration's daemons on this host (the destination's rsync daemon, CRIU page
   * server, lazy-pages daemon before the restore) may live after the prepare: past it the agent
   * stops them whatever the scheduler does (above the scheduler's longest migration: two
   * 10-minute copies and the freeze)
   */
  migrationDaemonDeadlineMs: z.coerce
    .number()
    .int()
    .min(1_000)
    .max(7 * 24 * 3_600_000)
    .default(3_600_000),
  dataDir: z.string().startsWith('/', 'must be an absolute path').default('/var/lib/ferry/agent'),
  pools: z.array(PoolConfig).max(64).default([]),
  networks: z.array(NetworkReport).max(64).default([]),
  /** report this CPU instead of (parts of) the real one: lets a test host pose as another CPU */
  cpuOverride: CpuInfo.partial().optional(),
  /** where other agents reach this host for data transfers */
  address: z.ipv4().nullable().default(null),
  /** each subdirectory with a template.json and a rootfs/ is an OS template */
  templatesDir: z.string().startsWith('/', 'must be an absolute path').default('/opt/ferry/templates'),
  runcPath: z.string().min(1).default('runc'),
  /** cgroup under which every container of this host gets its own; default /ferry/<hostId> */
  cgroupParent: z
    .string()
    .regex(/^(\/[A-Za-z0-9_.-]+)+$/, 'must be an absolute cgroup path like /ferry/host-1')
    .optional(),
  diskUsageIntervalMs: z.coerce.number().int().min(1000).default(30_000),
  /** lease period until a scheduler tells its own (it does, with every acknowledgement) */
  leaseMs: z.coerce.number().int().min(500).max(3_600_000).default(5_000),
  /**
   * what fencing does to HA-protected containers when the lease runs out. `none` leaves them
   * running (vSphere HA's "isolation response: disabled"): the cluster may then restart them
   * elsewhere while they still run here, until this host is heard from again — for workloads
   * that tolerate that, and for tests of what happens when fencing fails.
   */
  fenceAction: z.enum(['stop', 'freeze', 'none']).default('stop'),
  /**
   * how long after the lease lapsed the fence guard (the process that fences when the agent
   * itself is gone) acts; the agent, when alive, acts at once. Must stay well inside the
   * scheduler's margin (down-after minus lease).
   */
  fenceGuardGraceMs: z.coerce.number().int().min(0).max(60_000).default(500),
  /**
   * who runs the fence guard: `spawn` — the agent starts one (detached, it outlives the agent)
   * unless one already runs (the lab, a checkout); `unit` — systemd runs it as
   * ferry-fence-guard.service (`--persistent`, for the data directory /var/lib/ferry/agent) and
   * the agent only checks that it runs, logging an error when it does not. The packaged
   * ferry-agent.service sets FERRY_FENCE_GUARD=unit.
   */
  fenceGuard: z.enum(['spawn', 'unit']).default('spawn'),
  /** containers' network namespaces are named <prefix>-<workload>-<random> */
  netnsPrefix: z
    .string()
    .regex(/^[a-z0-9]{1,16}$/)
    .default('fc'),
  /**
   * Prometheus metrics at http://<metricsHost>:<metricsPort>/metrics; port 0 = any free port.
   * Default: the management address (`address`), else loopback — never every address, where
   * containers would find it on their gateway.
   */
  metricsHost: z.string().min(1).optional(),
  metricsPort: z.coerce.number().int().min(0).max(65_535).default(9465),
});

/** Pool ids and network names are unique. */
const uniqueNames = (config: z.infer<typeof AgentHostFields>, ctx: z.RefinementCtx): void => {
  const seen = new Set<string>();
  config.pools.forEach((pool, index) => {
    if (seen.has(pool.id)) ctx.addIssue({ code: 'custom', path: ['pools', index, 'id'], message: `duplicate pool id ${pool.id}` });
    seen.add(pool.id);
  });
  const names = new Set<string>();
  config.networks.forEach((network, index) => {
    if (names.has(network.name)) {
      ctx.addIssue({ code: 'custom', path: ['networks', index, 'name'], message: `duplicate network ${network.name}` });
    }
    names.add(network.name);
  });
};

export const AgentHostConfig = AgentHostFields.superRefine(uniqueNames);
export type AgentHostConfig = z.infer<typeof AgentHostConfig>;

/** The agent's whole configuration: the host's, and its NATS identity. */
export const AgentConfig = AgentHostFields.extend(NATS_CONFIG_FIELDS).superRefine(uniqueNames);
export type AgentConfig = z.infer<typeof AgentConfig>;

export const cgroupParentOf = (config: Pick<AgentHostConfig, 'cgroupParent' | 'hostId'>): string => config.cgroupParent ?? `/ferry/${config.hostId}`;

/** Where the agent serves its metrics: as configured, else its management address, else loopback. */
export const metricsHostOf = (config: AgentConfig): string => config.metricsHost ?? config.address ?? '127.0.0.1';

export const AGENT_ENV = {
  FERRY_HOST_ID: 'hostId',
  ...NATS_CONFIG_ENV,
  FERRY_REPORT_INTERVAL_MS: 'reportIntervalMs',
  FERRY_CRIU: 'criuPath',
  FERRY_MIGRATION_DAEMON_DEADLINE_MS: 'migrationDaemonDeadlineMs',
  FERRY_AGENT_DATA_DIR: 'dataDir',
  FERRY_LEASE_MS: 'leaseMs',
  FERRY_FENCE_ACTION: 'fenceAction',
  FERRY_FENCE_GUARD_GRACE_MS: 'fenceGuardGraceMs',
  FERRY_FENCE_GUARD: 'fenceGuard',
  FERRY_METRICS_HOST: 'metricsHost',
  FERRY_METRICS_PORT: 'metricsPort',
};

export function loadAgentConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): AgentConfig {
  return loadConfig(AgentConfig, { file, env, envMap: AGENT_ENV });
}

/** The host's part only: decommissioning a host that never joined (or whose identity is gone) needs no NATS. */
export function loadAgentHostConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): AgentHostConfig {
  return loadConfig(AgentHostConfig, { file, env, envMap: AGENT_ENV });
}
