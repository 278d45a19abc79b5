import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { z } from 'zod';
import {
  ControlPlaneSecrets,
  passwordHash,
  REDIS_ADMIN_RULES,
  REDIS_ADMIN_USER,
  REDIS_REPLICA_RULES,
  REDIS_REPLICA_USER,
  REDIS_SENTINEL_RULES,
  REDIS_SENTINEL_USER,
  redisAclRules,
  RedisPasswords,
  redisUserName,
  renderRedisConfig,
  renderSentinelConfig,
  SENTINEL_CLIENT_RULES,
  SENTINEL_PEER_RULES,
} from '@ferry/security';
import type { NatsIdentity } from '@ferry/protocol';

/** Where `init` writes, and what it sets up (defaults: an installed control plane). */
export const InitOptions = z.object({
  /** the control plane's management address: NATS and the API listen on it, agents reach it there */
  address: z.ipv4({ message: 'must be the IPv4 address hosts reach the control plane on' }),
  apiPort: z.coerce.number().int().min(1).max(65_535).default(7443),
  natsPort: z.coerce.number().int().min(1).max(65_535).default(4222),
  redisPort: z.coerce.number().int().min(1).max(65_535).default(6379),
  /** secrets, NATS and Redis configuration (0700, the service user's) */
  controlDir: z.string().startsWith('/').default('/var/lib/ferry/control'),
  /** Redis' data (inside the control directory: the one place the control-plane units may write) */
  redisDir: z.string().startsWith('/').default('/var/lib/ferry/control/redis-data'),
  /** the services' environment files, control.json and the cluster CA certificate (public) */
  configDir: z.string().startsWith('/').default('/etc/ferry'),
  /** the system user the control-plane units run as (ferry-control's postinst makes it); files become its own */
  user: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
    .default('ferry'),
  keyPrefix: z
    .string()
    .regex(/^[a-z0-9_-]{1,32}$/)
    .default('ferry'),
  /**
   * a NATS cluster: every node's client address (`IP:port`, this machine's `address` among them,
   * one node per machine); this machine runs its node from nats.conf, the others' configurations
   * are written to <controlDir>/nats-cluster/<IP>.conf, to be copied there (docs/install.md)
   */
  natsCluster: z
    .string()
    .transform((v, ctx) => {
      const nodes = v.split(',').map((n) => /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(n.trim()));
      if (nodes.some((n) => !n || !z.ipv4().safeParse(n[1]).success || Number(n[2]) < 1 || Number(n[2]) > 65_535)) {
        ctx.addIssue({ code: 'custom', message: "must be IPv4:port,IPv4:port,… (every NATS node's client address)" });
        return z.NEVER;
      }
      return nodes.map((n) => ({ host: n![1]!, port: Number(n![2]) }));
    })
    .refine((nodes) => nodes.length >= 3 && nodes.length % 2 === 1, 'a NATS cluster has 3 (or 5, 7) nodes')
    .refine((nodes) => new Set(nodes.map((n) => n.host)).size === nodes.length, 'one node per machine: every address once')
    .optional(),
  /** the port the NATS cluster's nodes route on (with natsCluster) */
  natsRoutePort: z.coerce.number().int().min(1).max(65_535).default(6222),
  /**
   * Redis with a standby: the three machines' management addresses (this machine's `address`
   * among them, `IP,IP,IP`). This machine's Redis starts as the primary, the others' as its
   * replicas, and each machine runs a Sentinel; the other machines' files are written to
   * <controlDir>/redis-sentinel/<IP>/, to be copied there (docs/install.md)
   */
  redisSentinel: z
    .string()
    .transform((v, ctx) => {
      const hosts = v.split(',').map((h) => h.trim());
      if (hosts.some((h) => !z.ipv4().safeParse(h).success)) {
        ctx.addIssue({ code: 'custom', message: 'must be IPv4,IPv4,IPv4 (the management addresses of the three machines that run Redis and a Sentinel each)' });
        return z.NEVER;
      }
      return hosts;
    })
    .refine((hosts) => hosts.length === 3, 'Redis with Sentinel runs on 3 machines (a Sentinel each: 2 of 3 decide a failover)')
    .refine((hosts) => new Set(hosts).size === hosts.length, 'one Redis and one Sentinel per machine: every address once')
    .optional(),
  /** the Sentinels' port (with redisSentinel) */
  sentinelPort: z.coerce.number().int().min(1).max(65_535).default(26379),
  /** how long the primary may not answer before the Sentinels fail over (with redisSentinel) */
  sentinelDownAfterMs: z.coerce.number().int().min(500).max(600_000).default(5_000),
});
export type InitOptions = z.input<typeof InitOptions>;

/** What ferry-admin reads back later (join-token): where the API is, where the secrets are. */
export const ControlFile = z.object({ apiUrl: z.string().url(), controlDir: z.string().startsWith('/'), caFile: z.string().startsWith('/') });
export type ControlFile = z.infer<typeof ControlFile>;

export interface InitResult {
  apiUrl: string;
  natsUrl: string;
  /** with redisSentinel: the Sentinels' addresses (FERRY_REDIS_SENTINELS) */
  redisSentinels: string | null;
  /** the bootstrap admin token: shown once by the command, kept only in <controlDir>/api-token (0600) */
  adminToken: string;
  files: string[];
}

const CONTROL_IDENTITIES: NatsIdentity[] = [
  { name: 'scheduler', role: 'scheduler' },
  { name: 'scheduler-2', role: 'scheduler' },
  { name: 'scheduler-3', role: 'scheduler' },
  { name: 'api', role: 'api' },
  { name: 'observer', role: 'observer' },
  { name: 'probe', role: 'probe' },
];

const envFile = (vars: Record<string, string>) =>
  `# Written by ferry-admin init: paths and addresses only, no secret.\n${Object.entries(vars)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;

async function userIds(user: string): Promise<{ uid: number; gid: number } | null> {
  const run = (flag: string) => execa('id', [flag, user], { reject: false });
  const [u, g] = await Promise.all([run('-u'), run('-g')]);
  return u.exitCode === 0 && g.exitCode === 0 ? { uid: Number(u.stdout), gid: Number(g.stdout) } : null;
}

function chownTree(path: string, ids: { uid: number; gid: number }): void {
  chownSync(path, ids.uid, ids.gid);
  if (statSync(path).isDirectory()) for (const entry of readdirSync(path)) chownTree(join(path, entry), ids);
}

/**
 * Sets up a control plane on this machine: the cluster CA, the NATS and API server certificates,
 * the control plane's NATS identities, nats-server's configuration (TLS both ways, least
 * privilege), Redis with its ACL users (passwords in 0600 files, the default user off) and
 * persistence, the bootstrap admin token, and the environment files the units read. Refuses a
 * directory that holds a control plane already: nothing is overwritten.
 */
export async function initControlPlane(input: InitOptions): Promise<InitResult> {
  const o = InitOptions.parse(input);
  if (existsSync(join(o.controlDir, 'ca.crt'))) {
    throw new Error(`${o.controlDir} holds a control plane already (its CA is there): nothing changed. To start over, move that directory away first.`);
  }
  const ids = userInfo().uid === 0 ? await userIds(o.user) : null;
  if (userInfo().uid === 0 && !ids) throw new Error(`no system user ${o.user}: install the ferry-control package (its postinst makes it) or pass --user`);

  const cluster = o.natsCluster;
  if (cluster && !cluster.some((n) => n.host === o.address)) throw new Error(`--nats-cluster must name this machine's address ${o.address} among its nodes`);
  const sentinelHosts = o.redisSentinel;
  if (sentinelHosts && !sentinelHosts.includes(o.address)) throw new Error(`--redis-sentinel must name this machine's address ${o.address} among its three`);
  if (sentinelHosts && o.sentinelPort === o.redisPort) throw new Error('--sentinel-port must differ from --redis-port');
  const secrets = await ControlPlaneSecrets.create(o.controlDir, [o.address, ...(cluster ?? []).map((n) => n.host)]);
  const names = { ips: [...new Set([o.address, '127.0.0.1'])], dns: ['localhost', hostname()].filter((d) => /^[a-z0-9.-]{1,253}$/i.test(d)) };
  const api = await secrets.issueServerCertificate('api-server', names);
  for (const identity of CONTROL_IDENTITIES) await secrets.admit(identity);
  const apiUrl = `https://${o.address}:${o.apiPort}`;
  const written: string[] = [];
  let natsUrl = `nats://${o.address}:${o.natsPort}`;
  if (!cluster) secrets.writeNatsConfig(o.address, o.natsPort);
  else {
    // every node's configuration from here: the same authorization, certificates and layout
    await secrets.issueRouteCertificate({ ips: cluster.map((n) => n.host), dns: [] });
    const others = join(o.controlDir, 'nats-cluster');
    mkdirSync(others, { recursive: true, mode: 0o700 });
    cluster.forEach((node, i) => {
      const routes = cluster.filter((n) => n !== node).map((n) => `${n.host}:${o.natsRoutePort}`);
      const file = node.host === o.address ? undefined : join(others, `${node.host}.conf`);
      secrets.writeNatsConfig(node.host, node.port, { clusterPort: o.natsRoutePort, routes, serverName: `nats-${i + 1}`, ...(file ? { file } : {}) });
      if (file) written.push(file);
    });
    natsUrl = cluster.map((n) => `nats://${n.host}:${n.port}`).join(',');
  }

  // Redis: loopback only (the scheduler and the API run here), its users by role
  const passwords = new RedisPasswords(secrets.paths.redisPasswords);
  const user = (name: string, rules: string[]) => ({ name, passwordHash: passwordHash(passwords.password(name)), rules });
  const redisUsers = [
    user(REDIS_ADMIN_USER, REDIS_ADMIN_RULES),
    user(redisUserName(o.keyPrefix, 'scheduler'), redisAclRules('scheduler', o.keyPrefix)),
    user(redisUserName(o.keyPrefix, 'api'), redisAclRules('api', o.keyPrefix)),
  ];
  mkdirSync(o.redisDir, { recursive: true, mode: 0o700 });
  let redisWhere: Record<string, string> = { FERRY_REDIS_URL: `redis://127.0.0.1:${o.redisPort}` };
  if (!sentinelHosts) {
    writeFileSync(secrets.paths.redisConfig, renderRedisConfig({ host: '127.0.0.1', port: o.redisPort, dataDir: o.redisDir, logFile: null, users: redisUsers, persistent: true }), { mode: 0o600 });
  } else {
    // every machine: Redis (this one the primary, the others its replicas) and a Sentinel, on its
    // management address and loopback; the same users everywhere (a replica promoted by a
    // failover must admit the services as the primary did), the replication and Sentinel users
    // besides; the services' users on the Sentinels may only ask where the primary is
    const serverUsers = [...redisUsers, user(REDIS_REPLICA_USER, REDIS_REPLICA_RULES), user(REDIS_SENTINEL_USER, REDIS_SENTINEL_RULES)];
    const sentinelUsers = [
      user(REDIS_ADMIN_USER, REDIS_ADMIN_RULES),
      user(REDIS_SENTINEL_USER, SENTINEL_PEER_RULES),
      ...(['scheduler', 'api'] as const).map((role) => user(redisUserName(o.keyPrefix, role), SENTINEL_CLIENT_RULES)),
    ];
    const others = join(o.controlDir, 'redis-sentinel');
    mkdirSync(others, { recursive: true, mode: 0o700 });
    for (const host of sentinelHosts) {
      const own = host === o.address;
      const dir = own ? o.controlDir : join(others, host);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const redisConfig = own ? secrets.paths.redisConfig : join(dir, 'redis.conf');
      const sentinelConfig = join(dir, 'sentinel.conf');
      writeFileSync(
        redisConfig,
        renderRedisConfig({
          host: `${host} 127.0.0.1`,
          port: o.redisPort,
          dataDir: o.redisDir,
          logFile: null,
          users: serverUsers,
          persistent: true,
          replication: { user: REDIS_REPLICA_USER, password: passwords.password(REDIS_REPLICA_USER), ...(own ? {} : { replicaOf: { host: o.address, port: o.redisPort } }) },
        }),
        { mode: 0o600 },
      );
      writeFileSync(
        sentinelConfig,
        renderSentinelConfig({
          host: `${host} 127.0.0.1`,
          port: o.sentinelPort,
          dir: o.controlDir,
          logFile: null,
          masterName: o.keyPrefix,
          master: { host: o.address, port: o.redisPort },
          quorum: 2,
          downAfterMs: o.sentinelDownAfterMs,
          failoverTimeoutMs: Math.max(10_000, 4 * o.sentinelDownAfterMs),
          auth: { user: REDIS_SENTINEL_USER, password: passwords.password(REDIS_SENTINEL_USER) },
          users: sentinelUsers,
        }),
        { mode: 0o600 },
      );
      written.push(...(own ? [sentinelConfig] : [redisConfig, sentinelConfig]));
    }
    redisWhere = { FERRY_REDIS_SENTINELS: sentinelHosts.map((h) => `${h}:${o.sentinelPort}`).join(','), FERRY_REDIS_SENTINEL_NAME: o.keyPrefix };
  }

  const adminToken = `ferry_${randomBytes(32).toString('base64url')}`;
  writeFileSync(secrets.paths.apiToken, `${adminToken}\n`, { mode: 0o600 });

  mkdirSync(o.configDir, { recursive: true, mode: 0o755 });
  const caFile = join(o.configDir, 'ca.crt');
  copyFileSync(secrets.ca.cert, caFile); // public: what clients (ferry, browsers) trust
  chmodSync(caFile, 0o644);
  const redisEnv = (role: 'scheduler' | 'api') => {
    const name = redisUserName(o.keyPrefix, role);
    return { ...redisWhere, FERRY_REDIS_USER: name, FERRY_REDIS_PASSWORD_FILE: passwords.file(name), FERRY_KEY_PREFIX: o.keyPrefix };
  };
  const schedulerEnv = join(o.configDir, 'scheduler.env');
  const apiEnv = join(o.configDir, 'api.env');
  writeFileSync(schedulerEnv, envFile({ ...redisEnv('scheduler'), ...secrets.clientEnv('scheduler', natsUrl), FERRY_METRICS_HOST: '127.0.0.1' }), { mode: 0o644 });
  writeFileSync(
    apiEnv,
    envFile({
      ...redisEnv('api'),
      ...secrets.clientEnv('api', natsUrl),
      FERRY_API_HOST: o.address,
      FERRY_API_PORT: String(o.apiPort),
      FERRY_API_TOKEN_FILE: secrets.paths.apiToken,
      FERRY_API_TLS_CERT_FILE: api.cert,
      FERRY_API_TLS_KEY_FILE: api.key,
      FERRY_CONTROL_DIR: o.controlDir,
      FERRY_NATS_ADVERTISE_URL: natsUrl,
    }),
    { mode: 0o644 },
  );
  const controlFile = join(o.configDir, 'control.json');
  const control: ControlFile = { apiUrl, controlDir: o.controlDir, caFile };
  writeFileSync(controlFile, `${JSON.stringify(control, null, 2)}\n`, { mode: 0o644 });

  if (ids) {
    chownTree(o.controlDir, ids);
    chownTree(o.redisDir, ids);
  }
  return { apiUrl, natsUrl, redisSentinels: redisWhere.FERRY_REDIS_SENTINELS ?? null, adminToken, files: [o.controlDir, o.redisDir, caFile, schedulerEnv, apiEnv, controlFile, ...written] };
}
