import { describe, expect, it } from 'vitest';
import { nkeys } from 'nats';
import { agentIdentity } from '@ferry/protocol';
import { renderNatsAuthorization, renderNatsServerConfig } from './nats-config.ts';

const key = () => nkeys.createUser().getPublicKey();

describe('the generated nats-server configuration', () => {
  const users = [
    { identity: agentIdentity('h1'), publicKey: key() },
    { identity: { name: 'scheduler', role: 'scheduler' as const }, publicKey: key() },
    { identity: { name: 'api', role: 'api' as const }, publicKey: key() },
  ];

  it('requires TLS with verified client certificates and includes the identities', () => {
    const text = renderNatsServerConfig({
      host: '10.0.0.1',
      port: 4222,
      tls: { cert: '/s/nats.crt', key: '/s/nats.key', ca: '/s/ca.crt' },
      authorizationFile: '/s/nats-authorization.conf',
      pidFile: '/s/nats.pid',
      logFile: '/s/nats.log',
    });
    expect(text).toContain('cert_file: "/s/nats.crt"');
    expect(text).toContain('ca_file: "/s/ca.crt"\n  verify: true');
    expect(text).toContain('include "nats-authorization.conf"');
    expect(text).toContain('listen: "10.0.0.1:4222"');
  });

  it('lists every identity with its own permissions, no anonymous user', () => {
    const text = renderNatsAuthorization(users);
    expect(text).not.toContain('no_auth_user');
    expect(text).toContain(`{ nkey: "${users[0]!.publicKey}", permissions: { publish: { allow: ["ferry.host.h1.capacity", "ferry.events.migrations.*.progress.h1"] }`);
    expect(text).toContain('subscribe: { allow: ["ferry.agent.h1.>", "ferry.host.h1.lease", "_INBOX_agent-h1.>"] }, allow_responses: { max: 1, expires: "30m" }');
    expect(text).toMatch(/# api \(api\)\n.*publish: \{ deny: \[">"\] \}, subscribe: \{ allow: \["ferry.events.>", "_INBOX_api.>"\] \}/);
  });

  it('is the same text for the same users in any order', () => {
    expect(renderNatsAuthorization([...users].reverse())).toBe(renderNatsAuthorization(users));
  });

  it('refuses a key that is no NKey user key (nothing can be smuggled into the file)', () => {
    expect(() => renderNatsAuthorization([{ identity: agentIdentity('h2'), publicKey: 'U" } ] } authorization { users: [' }])).toThrow(/not an NKey/);
  });
});
