import { natsPermissions, type NatsIdentity, type NatsPermissions } from '@ferry/protocol';

export interface NatsUser {
  identity: NatsIdentity;
  /** the identity's public NKey (U…) */
  publicKey: string;
}

export interface NatsServerConfig {
  host: string;
  port: number;
  tls: { cert: string; key: string };
  users: NatsUser[];
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
 * nats-server's configuration: TLS only, every client an NKey user with least-privilege
 * permissions (natsPermissions), no anonymous user. Pure: the same users give the same text.
 */
export function renderNatsConfig(config: NatsServerConfig): string {
  for (const user of config.users) {
    if (!/^U[A-Z2-7]{55}$/.test(user.publicKey)) throw new Error(`${user.identity.name}: not an NKey user public key`);
  }
  const users = [...config.users]
    .sort((a, b) => a.identity.name.localeCompare(b.identity.name))
    .map((u) => `    # ${u.identity.name} (${u.identity.role})\n    { nkey: ${q(u.publicKey)}, permissions: ${permissionsBlock(natsPermissions(u.identity))} }`);
  return [
    '# Written by Ferry: every client is an NKey identity with its own permissions; TLS only.',
    `listen: ${q(`${config.host}:${config.port}`)}`,
    'tls {',
    `  cert_file: ${q(config.tls.cert)}`,
    `  key_file: ${q(config.tls.key)}`,
    '  timeout: 2',
    '}',
    'authorization {',
    '  timeout: 2',
    '  users: [',
    users.join('\n'),
    '  ]',
    '}',
    '',
  ].join('\n');
}
