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
}

/** A JSON string is a valid nats-server config string: quoting without escaping mistakes. */
const q = (value: string) => JSON.stringify(value);
const list = (values: string[]) => `[${values.map(q).join(', ')}]`;

function permissionsBlock(p: NatsPermissions): string {
  const rule = (r: { allow?: string[]; deny?: string[] }) =>
    [r.allow ? `allow: ${list(r.allow)}` : '', r.deny ? `deny: ${list(r.deny)}` : ''].filter(Boolean).join(', ');
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
    `include ${q(basename(config.authorizationFile))}`,
    '',
  ].join('\n');
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
