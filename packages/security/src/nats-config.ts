import { basename } from 'node:path';
import { natsPermissions, type NatsIdentity, type NatsPermissions } from '@ferry/protocol';

export interface NatsUser {
  identity: NatsIdentity;
  /** the identity's public NKey (U…) */
  publicKey: string;
}

export interface NatsServerConfig {
  host: string;
  port: number;
  /** the server's certificate and key, and the CA every client's certificate must chain to */
  tls: { cert: string; key: string; ca: string };
  /** the file renderNatsAuthorization writes, next to this one (nats-server resolves includes from the including file's directory) */
  authorizationFile: string;
  /** where the server writes its pid (what a reload signals) and its log (where a reload shows) */
  pidFile: string;
  logFile: string;
  /** this server's name in a cluster (`server_name`); a single server goes without */
  serverName?: string | undefined;
  /** a node of a NATS cluster: how it reaches the others (routes) and how it lets them in */
  cluster?: NatsClusterConfig | undefined;
}

/** The subject a route's certificate must carry (verify_and_map): what only NATS nodes are issued. */
export const NATS_ROUTE_SUBJECT = 'CN=nats-route';

export interface NatsClusterConfig {
  /** the cluster's name: every node the same */
  name: string;
  /** where this node accepts routes from the others */
  host: string;
  port: number;
  /** the other nodes' route addresses (host:port); listing this node too is harmless (nats-server ignores a route to itself) */
  routes: string[];
  /**
   * the route certificate (serverAuth and clientAuth: a route is a TLS client of the node it
   * dials and a TLS server of the node that dials it), and the CA the other side's must chain to
   */
  tls: { cert: string; key: string; ca: string };
}

const HOST_PORT = /^[A-Za-z0-9.:[\]-]{1,253}:[0-9]{1,5}$/;

/** A JSON string is a valid nats-server config string: quoting without escaping mistakes. */
const q = (value: string) => JSON.stringify(value);
const list = (values: string[]) => `[${values.map(q).join(', ')}]`;

function permissionsBlock(p: NatsPermissions): string {
  const rule = (r: { allow?: string[]; deny?: string[] }) => [r.allow ? `allow: ${list(r.allow)}` : '', r.deny ? `deny: ${list(r.deny)}` : ''].filter(Boolean).join(', ');
  const lines = [`publish: { ${rule(p.publish)} }`, `subscribe: { ${rule(p.subscribe)} }`];
  if (p.allowResponses) lines.push(`allow_responses: { max: ${p.allowResponses.max}, expires: ${q(p.allowResponses.expires)} }`);
  return `{ ${lines.join(', ')} }`;
}

/**
 * nats-server's configuration: TLS only, both ends verified (a client shows a certificate of the
 * cluster CA *and* signs in as one of its NKey identities), the identities in their own included
 * file. Pure: the same settings give the same text.
 */
export function renderNatsServerConfig(config: NatsServerConfig): string {
  return [
    '# Written by Ferry: TLS only, clients verified by certificate and NKey; the identities are in the included file.',
    ...(config.serverName !== undefined ? [`server_name: ${q(serverName(config.serverName))}`] : []),
    `listen: ${q(`${config.host}:${config.port}`)}`,
    `pid_file: ${q(config.pidFile)}`,
    `log_file: ${q(config.logFile)}`,
    'tls {',
    `  cert_file: ${q(config.tls.cert)}`,
    `  key_file: ${q(config.tls.key)}`,
    `  ca_file: ${q(config.tls.ca)}`,
    '  verify: true',
    '  timeout: 2',
    '}',
    ...(config.cluster ? clusterBlock(config.cluster) : []),
    `include ${q(basename(config.authorizationFile))}`,
    '',
  ].join('\n');
}

function serverName(name: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(name)) throw new Error(`not a NATS server name: ${name}`);
  return name;
}

/**
 * A cluster node's routes: TLS both ways with the cluster CA, and a route is let in only when its
 * certificate chains to that CA *and* names the route subject (`verify_and_map` with the one
 * cluster user `CN=nats-route`). Client certificates of the same CA (every agent has one) are
 * refused as routes: a route bypasses every permission, so chaining to the CA is not enough. No
 * route password exists, so none is in this file.
 */
function clusterBlock(cluster: NatsClusterConfig): string[] {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cluster.name)) throw new Error(`not a NATS cluster name: ${cluster.name}`);
  const listen = `${cluster.host}:${cluster.port}`;
  for (const address of [listen, ...cluster.routes]) if (!HOST_PORT.test(address)) throw new Error(`not a host:port: ${address}`);
  return [
    'cluster {',
    `  name: ${q(cluster.name)}`,
    `  listen: ${q(listen)}`,
    `  routes: ${list(cluster.routes.map((r) => `nats-route://${r}`))}`,
    '  tls {',
    `    cert_file: ${q(cluster.tls.cert)}`,
    `    key_file: ${q(cluster.tls.key)}`,
    `    ca_file: ${q(cluster.tls.ca)}`,
    '    verify_and_map: true',
    '    timeout: 2',
    '  }',
    `  authorization { user: ${q(NATS_ROUTE_SUBJECT)}, timeout: 2 }`,
    '}',
  ];
}

/**
 * The identities nats-server admits: every client an NKey user with least-privilege permissions
 * (natsPermissions), no anonymous user. Pure: the same users in any order give the same text.
 */
export function renderNatsAuthorization(users: NatsUser[]): string {
  for (const user of users) {
    if (!/^U[A-Z2-7]{55}$/.test(user.publicKey)) throw new Error(`${user.identity.name}: not an NKey user public key`);
  }
  const lines = [...users]
    .sort((a, b) => a.identity.name.localeCompare(b.identity.name))
    .map((u) => `    # ${u.identity.name} (${u.identity.role})\n    { nkey: ${q(u.publicKey)}, permissions: ${permissionsBlock(natsPermissions(u.identity))} }`);
  return ['# Written by Ferry: the admitted identities (rewritten when a host joins or is removed).', 'authorization {', '  timeout: 2', '  users: [', ...lines, '  ]', '}', ''].join('\n');
}
