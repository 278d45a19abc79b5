import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@ferry/runtime';
import type { HostListResponse, HostView } from '@ferry/protocol';
import { connect, type NatsConnection } from 'nats';
import { agentIdentity, type NatsIdentity } from '@ferry/protocol';
import { natsConnectOptions, readRedisPassword } from '@ferry/runtime';
import { Redis, type RedisOptions } from 'ioredis';
import { natsClusterView, startNats, startNatsCluster, startRedis, startRedisSentinel, waitForNatsCluster, type EmbeddedRedisSentinel, type RedisCredentials } from './infra.ts';
import { aclUserArgs, passwordHash, redisAclRules, RedisPasswords, redisUserName, type RedisAclUser, type RedisRole } from '@ferry/security';
import { ControlPlaneSecrets, natsNodePaths } from '@ferry/security';
import type { Lab } from './lab/lab.ts';
import { freePort } from '@ferry/runtime';
import { Supervisor, type ManagedProcess, type RestartPolicy } from './supervisor.ts';
import { repoRoot, serviceEntry, type ServiceName } from './paths.ts';

export { repoRoot } from './paths.ts';

/**
 * A developer's profiling knob: FERRY_CPU_PROF_DIR=<dir> (and FERRY_CPU_PROF_SERVICES, a comma
 * list of service kinds, default "api,scheduler") starts those services under `node --cpu-prof`,
 * each writing a .cpuprofile into <dir> when it exits (benchmarks profile with it; never set by
 * the product).
 */
function cpuProfileArgs(service: ServiceName): string[] {
  const dir = process.env.FERRY_CPU_PROF_DIR;
  const services = (process.env.FERRY_CPU_PROF_SERVICES ?? 'api,scheduler').split(',');
  return dir && dir.startsWith('/') && services.includes(service) ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/** the schedulers a local cluster can run (each its own NATS identity) */
export const SCHEDULER_NAMES = ['scheduler', 'scheduler-2', 'scheduler-3', 'scheduler-4'];

export interface ClusterOptions {
  stateDir: string;
  /**
   * use this Redis (a URL without credentials) instead of starting an embedded one; the cluster's
   * users are then created through `redisAdmin` (ACL SETUSER). NATS is always the cluster's own:
   * it holds its identities.
   */
  redisUrl?: string | undefined;
  /** an administrator of that Redis (required with redisUrl) */
  redisAdmin?: RedisCredentials | undefined;
  /**
   * the embedded Redis keeps its data (AOF, appendfsync everysec) in <stateDir>/redis, so a
   * restart of Redis or of the cluster keeps its state; default true (false: a throwaway test cluster)
   */
  persistentRedis?: boolean;
  /** the embedded Redis' restart policy (default INFRA_RESTART; tests slow it down to watch the outage) */
  redisRestart?: RestartPolicy;
  /**
   * the embedded Redis with a standby: 0 (default) one server; 1-4 a primary, that many
   * replicas and three Sentinels (`redis-1`…, `sentinel-1`…`sentinel-3`, on loopback), every
   * service connecting through the Sentinels (FERRY_REDIS_SENTINELS): when the primary dies a
   * replica takes over (docs/failover.md, "Redis availability"). Not with redisUrl.
   */
  redisReplicas?: number;
  /** Sentinel's down-after-milliseconds with redisReplicas (default 1000) */
  redisSentinelDownAfterMs?: number;
  /** hosts whose agents may connect (a lab's hosts are admitted anyway); others with admitHost() */
  hostIds?: string[];
  apiPort?: number | undefined;
  apiToken?: string | undefined;
  keyPrefix?: string;
  /** extra environment for the scheduler (thresholds in tests) */
  schedulerEnv?: Record<string, string>;
  /** extra environment for the API (FERRY_PLAN_TTL_MS in tests) */
  apiEnv?: Record<string, string>;
  /** placement policy settings the API and the scheduler must share (FERRY_PLACEMENT_MODE, FERRY_HA_ADMISSION, FERRY_CPU_BASELINE) */
  policyEnv?: Record<string, string>;
  /** run agents in this lab's hosts; embedded NATS and Redis then listen on its management address */
  lab?: Lab;
  /**
   * embedded nats-servers: one (`nats`, default) or a cluster of three (`nats-1`…`nats-3`, on free
   * ports of the same address, routes over TLS), every service given all their URLs
   */
  natsNodes?: 1 | 3;
  /** the embedded nats-servers' restart policy (default INFRA_RESTART; tests slow it down to watch the outage) */
  natsRestart?: RestartPolicy;
  log: Logger;
}

export interface AgentOptions {
  reportIntervalMs?: number;
  cpuOverride?: Record<string, unknown>;
  /** merged into the generated config file as is (tests use it to write bad configs) */
  extraConfig?: Record<string, unknown>;
  /** extra environment (FERRY_* settings) for the agent process */
  env?: Record<string, string>;
}

/** Ferry's services as child processes on one machine: what `npm start` runs and tests drive. */
export class LocalCluster {
  readonly supervisor: Supervisor;
  natsUrl = '';
  redisUrl = '';
  apiUrl = '';
  readonly token: string;
  readonly keyPrefix: string;
  private readonly agents = new Map<string, ManagedProcess>();
  /** free ports for the schedulers' metrics, taken at start (replicas started later use the next) */
  private metricsPorts: number[] = [];
  /** each scheduler's metrics URL, by process name */
  readonly schedulerMetrics = new Map<string, string>();

  /** the CA, the NATS server certificate and the NATS identities (in <stateDir>/secrets) */
  secrets!: ControlPlaneSecrets;
  /** the embedded nats-servers (one, or a cluster's nodes): their process names, URLs and processes */
  natsServers: Array<{ name: string; url: string; process: ManagedProcess; routeAddress?: string }> = [];
  /** with redisReplicas: the servers and Sentinels (the primary moves: ask the Sentinels) */
  redisSentinel: EmbeddedRedisSentinel | null = null;
  /** the Redis users' passwords (<stateDir>/secrets/redis, one 0600 file each) */
  private redisPasswords!: RedisPasswords;
  private redisAdminCredentials!: RedisCredentials;

  constructor(private readonly options: ClusterOptions) {
    this.supervisor = new Supervisor(join(options.stateDir, 'run.json'), join(options.stateDir, 'logs'), options.log);
    this.token = options.apiToken ?? randomBytes(24).toString('base64url');
    this.keyPrefix = options.keyPrefix ?? 'ferry';
  }

  spawnService(name: string, service: ServiceName, env: Record<string, string>, args: string[] = []): ManagedProcess {
    return this.supervisor.spawn(name, process.execPath, [...cpuProfileArgs(service), '--import', 'tsx', serviceEntry(service), ...args], { cwd: repoRoot, env });
  }

  /** Embedded NATS/Redis (unless URLs were given), then scheduler and API. */
  async start(): Promise<void> {
    const { options } = this;
    await this.supervisor.claim();
    const host = options.lab?.gateway ?? '127.0.0.1';
    this.secrets = await ControlPlaneSecrets.create(join(options.stateDir, 'secrets'), [host]);
    const identities: NatsIdentity[] = [
      ...SCHEDULER_NAMES.map((name) => ({ name, role: 'scheduler' as const })),
      { name: 'api', role: 'api' },
      { name: 'observer', role: 'observer' },
      ...[...(options.lab?.hosts.map((h) => h.id) ?? []), ...(options.hostIds ?? [])].map(agentIdentity),
    ];
    await Promise.all(identities.map((identity) => this.secrets.admit(identity)));
    // pid files of an earlier run's servers (claim() stopped them): a reload must not signal their pids
    for (const node of this.secrets.natsNodes()) rmSync(natsNodePaths(this.secrets.dir, node).pid, { force: true });
    if ((options.natsNodes ?? 1) === 3) {
      const nats = await startNatsCluster(this.supervisor, this.secrets, host, 3, options.natsRestart);
      this.natsServers = nats.nodes;
      this.natsUrl = nats.url;
    } else {
      const nats = await startNats(this.supervisor, this.secrets, host, 'nats', options.natsRestart);
      this.natsServers = [{ name: 'nats', url: nats.url, process: nats.process }];
      this.natsUrl = nats.url;
    }
    // a lab host's agent config names its NATS identity, like an installed host's would (its
    // teardown run reads the same file)
    for (const labHost of options.lab?.hosts ?? []) {
      const s = this.secrets.clientSettings(agentIdentity(labHost.id).name, this.natsUrl);
      const current = JSON.parse(readFileSync(labHost.agentConfigFile, 'utf8')) as Record<string, unknown>;
      const nats = { natsUrl: s.url, natsIdentity: s.identity, natsSeedFile: s.seedFile, natsCaFile: s.caFile, natsCertFile: s.certFile, natsKeyFile: s.keyFile };
      writeFileSync(labHost.agentConfigFile, JSON.stringify({ ...current, ...nats }, null, 2));
    }
    await this.startRedis(host);
    this.metricsPorts = await Promise.all(Array.from({ length: 4 }, () => freePort()));
    this.startScheduler();
    const common = this.commonEnv('api');
    const port = options.apiPort ?? (await freePort());
    this.apiUrl = `http://127.0.0.1:${port}`;
    // the API admits joining hosts and revokes removed ones in this control plane's directory
    const api = this.spawnService('api', 'api', {
      ...common,
      ...this.secrets.clientEnv('api', this.natsUrl),
      FERRY_API_PORT: String(port),
      FERRY_API_TOKEN: this.token,
      FERRY_CONTROL_DIR: this.secrets.dir,
      ...options.apiEnv,
    });
    await this.waitForApi(api);
  }

  /**
   * The cluster's Redis users (one per role, named after the key prefix): written into the
   * embedded server's configuration, or created through the administrator of a Redis it was given.
   */
  private async startRedis(host: string): Promise<void> {
    const { options } = this;
    this.redisPasswords = new RedisPasswords(join(this.secrets.dir, 'redis'));
    const users: RedisAclUser[] = (['scheduler', 'api'] as const).map((role) => {
      const name = redisUserName(this.keyPrefix, role);
      return { name, passwordHash: passwordHash(this.redisPasswords.password(name)), rules: redisAclRules(role, this.keyPrefix) };
    });
    if ((options.redisReplicas ?? 0) > 0) {
      if (options.redisUrl !== undefined) throw new Error('redisReplicas starts an embedded Redis with replicas and Sentinels: not with redisUrl');
      this.redisSentinel = await startRedisSentinel(this.supervisor, join(options.stateDir, 'redis'), {
        passwords: this.redisPasswords,
        users,
        replicas: options.redisReplicas!,
        persistent: options.persistentRedis ?? true,
        ...(options.redisRestart ? { restart: options.redisRestart } : {}),
        ...(options.redisSentinelDownAfterMs ? { downAfterMs: options.redisSentinelDownAfterMs } : {}),
      });
      this.redisUrl = this.redisSentinel.primaryUrl;
      this.redisAdminCredentials = this.redisSentinel.admin;
      return;
    }
    if (options.redisUrl === undefined) {
      const redis = await startRedis(this.supervisor, join(options.stateDir, 'redis'), {
        host,
        passwords: this.redisPasswords,
        users,
        persistent: options.persistentRedis ?? true,
        ...(options.redisRestart ? { restart: options.redisRestart } : {}),
      });
      this.redisUrl = redis.url;
      this.redisAdminCredentials = redis.admin;
      return;
    }
    if (!options.redisAdmin) throw new Error("a Redis given by URL needs an administrator (redisAdmin: user and password file) to create the cluster's users");
    this.redisUrl = options.redisUrl;
    this.redisAdminCredentials = options.redisAdmin;
    const admin = this.redisAdmin({ maxRetriesPerRequest: 2 });
    try {
      for (const user of users) await admin.call('ACL', 'SETUSER', user.name, ...aclUserArgs(user));
    } finally {
      admin.disconnect();
    }
  }

  /** How a role connects to Redis: its user and password file (tests use it to act as one). */
  redisCredentials(role: RedisRole): RedisCredentials {
    const user = redisUserName(this.keyPrefix, role);
    return { user, passwordFile: this.redisPasswords.file(user) };
  }

  /**
   * A connection as Redis' administrator (tests, tools): every key and command. With Sentinels,
   * to whichever server is the primary (asked of the Sentinels, as the administrator). The caller
   * disconnects it.
   */
  redisAdmin(extra: RedisOptions = {}): Redis {
    const { user, passwordFile } = this.redisAdminCredentials;
    const password = readRedisPassword(passwordFile);
    const set = this.redisSentinel;
    if (set) {
      const sentinels = set.sentinelNodes.map(({ host, port }) => ({ host, port }));
      return new Redis({ sentinels, name: set.masterName, role: 'master', sentinelUsername: user, sentinelPassword: password, username: user, password, ...extra });
    }
    return new Redis(this.redisUrl, { username: user, password, ...extra });
  }

  /** The settings of a role's services (paths only: no password in the environment). */
  private commonEnv(role: RedisRole): Record<string, string> {
    const { user, passwordFile } = this.redisCredentials(role);
    const where: Record<string, string> = this.redisSentinel
      ? { FERRY_REDIS_SENTINELS: this.redisSentinel.sentinels, FERRY_REDIS_SENTINEL_NAME: this.redisSentinel.masterName }
      : { FERRY_REDIS_URL: this.redisUrl };
    return { ...where, FERRY_REDIS_USER: user, FERRY_REDIS_PASSWORD_FILE: passwordFile, FERRY_KEY_PREFIX: this.keyPrefix, ...this.options.policyEnv };
  }

  /** Starts a scheduler (again: tests replace one that died). */
  startScheduler(name = 'scheduler'): ManagedProcess {
    const port = this.metricsPorts.shift();
    if (port === undefined) throw new Error('no free metrics port left for another scheduler');
    this.schedulerMetrics.set(name, `http://127.0.0.1:${port}/metrics`);
    if (!this.secrets.has(name)) throw new Error(`no NATS identity for a scheduler named ${name}: use one of ${SCHEDULER_NAMES.join(', ')}`);
    return this.spawnService(name, 'scheduler', { ...this.commonEnv('scheduler'), ...this.secrets.clientEnv(name, this.natsUrl), FERRY_METRICS_PORT: String(port), ...this.options.schedulerEnv });
  }

  private async waitForApi(api: ManagedProcess, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (api.exited) throw new Error(`the API exited during start-up; see ${api.logFile}`);
      const ok = await fetch(`${this.apiUrl}/healthz`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) return;
      await sleep(100);
    }
    throw new Error(`the API did not answer within ${timeoutMs} ms; see ${api.logFile}`);
  }

  hostDir(hostId: string): string {
    return join(this.options.stateDir, 'hosts', hostId);
  }

  /**
   * Starts a host's agent: inside its lab host when there is a lab, otherwise as a plain process
   * with a generated config (a local pool, the shared pool, the demo network).
   */
  startAgent(hostId: string, options: AgentOptions = {}): ManagedProcess {
    const lab = this.options.lab;
    if (lab) {
      const [command, args] = lab.inHost(hostId, process.execPath, ['--import', 'tsx', serviceEntry('agent'), '--config', lab.host(hostId).agentConfigFile]);
      // its NATS identity is in its config file (written at start, or by `ferry-agent join`)
      const agent = this.supervisor.spawn(`agent-${hostId}`, command, args, { cwd: repoRoot, env: { ...options.env } });
      this.agents.set(hostId, agent);
      return agent;
    }
    const dir = this.hostDir(hostId);
    const localPool = join(dir, 'pool-local');
    const sharedPool = join(this.options.stateDir, 'shared-pool');
    mkdirSync(localPool, { recursive: true });
    mkdirSync(sharedPool, { recursive: true });
    const config = {
      hostId,
      dataDir: join(dir, 'data'),
      reportIntervalMs: options.reportIntervalMs ?? 1000,
      pools: [
        { id: 'local', path: localPool, shared: false },
        { id: 'shared', path: sharedPool, shared: true },
      ],
      networks: [{ name: 'prod', bridge: 'fbr-prod', subnet: '10.77.0.0/24' }],
      metricsPort: 0, // several agents share this network namespace
      ...(options.cpuOverride ? { cpuOverride: options.cpuOverride } : {}),
      ...options.extraConfig,
    };
    const configFile = join(dir, 'agent.json');
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    const agent = this.spawnService(`agent-${hostId}`, 'agent', { ...this.agentNatsEnv(hostId), ...options.env }, ['--config', configFile]);
    this.agents.set(hostId, agent);
    return agent;
  }

  private agentNatsEnv(hostId: string): Record<string, string> {
    const { name } = agentIdentity(hostId);
    if (!this.secrets.has(name)) throw new Error(`host ${hostId} has no NATS identity: admit it first (admitHost)`);
    return this.secrets.clientEnv(name, this.natsUrl);
  }

  /** Gives a host's agent its NATS identity (the server reloads its configuration once). */
  async admitHost(hostId: string): Promise<void> {
    await this.secrets.changeIdentities(() => this.secrets.admit(agentIdentity(hostId)));
  }

  /** Takes a host's NATS identity away: its agent is disconnected and cannot connect again. */
  async revokeHost(hostId: string): Promise<void> {
    await this.secrets.changeIdentities(() => this.secrets.revoke(agentIdentity(hostId).name));
  }

  /**
   * A NATS connection as one of this cluster's identities (tests: `observer`, or an admitted
   * host's agent), to every server (or to the servers of `url`: one node of a NATS cluster).
   */
  connectNats(identity: string, url = this.natsUrl): Promise<NatsConnection> {
    return connect({ ...natsConnectOptions(this.secrets.clientSettings(identity, url)), maxReconnectAttempts: 10, reconnectTimeWait: 250 });
  }

  /** What each embedded nats-server knows of the NATS cluster: the client URLs of the nodes it is routed to, its own included (null: not answering). */
  async natsClusterView(): Promise<Map<string, string[] | null>> {
    const views = await Promise.all(this.natsServers.map(async (n) => [n.name, await natsClusterView(this.secrets, n.url)] as const));
    return new Map(views);
  }

  /** Waits until every embedded nats-server answers and is routed to every other one (after a node was restarted). */
  async waitForNatsCluster(timeoutMs = 20_000): Promise<void> {
    await waitForNatsCluster(this.secrets, this.natsServers, timeoutMs);
  }

  agent(hostId: string): ManagedProcess | undefined {
    return this.agents.get(hostId);
  }

  /** Authenticated request against the API; throws on a non-2xx answer. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${this.apiUrl}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  }

  /**
   * Every record of a list route (`key` of each answer), following its pages (`limit` 1000,
   * `cursor` → `nextCursor`); `path` may carry filters.
   */
  async list<T>(path: string, key: string): Promise<T[]> {
    const items: T[] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const page: Record<string, unknown> = await this.get<Record<string, unknown>>(`${path}${sep}limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`);
      items.push(...(page[key] as T[]));
      cursor = typeof page.nextCursor === 'string' ? page.nextCursor : null;
    } while (cursor !== null);
    return items;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /**
   * Waits until the API lists these hosts as up with a report from the agent process this cluster
   * started (a persisted record from an earlier run does not count).
   */
  async waitForHostsUp(hostIds: string[], timeoutMs = 20_000): Promise<HostListResponse> {
    const deadline = Date.now() + timeoutMs;
    const fresh = (host: HostView) => {
      const agent = this.agents.get(host.id);
      return host.state === 'up' && (!agent || host.capacity.agent.pid === agent.pid);
    };
    for (;;) {
      const list: HostListResponse | null = await this.list<HostView>('/v1/hosts', 'hosts').then(
        (hosts) => ({ hosts, nextCursor: null }),
        () => null,
      );
      const up = new Set(list?.hosts.filter(fresh).map((h) => h.id));
      if (list && hostIds.every((id) => up.has(id))) return list;
      if (Date.now() > deadline) throw new Error(`hosts not up within ${timeoutMs} ms: ${hostIds.filter((id) => !up.has(id)).join(', ')}`);
      await sleep(100);
    }
  }

  async stop(): Promise<void> {
    await this.supervisor.stopAll();
  }
}
