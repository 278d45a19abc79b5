import { describe, expect, it } from 'vitest';
import { nkeys } from 'nats';
import { agentIdentity } from '@ferry/protocol';
import { renderNatsConfig } from './nats-config.ts';

const key = () => nkeys.createUser().getPublicKey();

describe('the generated nats-server configuration', () => {
  const config = {
    host: '10.0.0.1',
    port: 4222,
    tls: { cert: '/s/nats.crt', key: '/s/nats.key' },
    users: [
      { identity: agentIdentity('h1'), publicKey: key() },
      { identity: { name: 'scheduler', role: 'scheduler' as const }, publicKey: key() },
      { identity: { name: 'api', role: 'api' as const }, publicKey: key() },
    ],
  };

  it('requires TLS and lists every identity with its own permissions, no anonymous user', () => {
    const text = renderNatsConfig(config);
    expect(text).toContain('cert_file: "/s/nats.crt"');
    expect(text).not.toContain('no_auth_user');
    expect(text).toContain(`{ nkey: "${config.users[0]!.publicKey}", permissions: { publish: { allow: ["ferry.host.h1.capacity", "ferry.events.migrations.*.progress.h1"] }`);
    expect(text).toContain('subscribe: { allow: ["ferry.agent.h1.>", "ferry.host.h1.lease", "_INBOX_agent-h1.>"] }, allow_responses: { max: 1, expires: "30m" }');
    expect(text).toMatch(/# api \(api\)\n.*publish: \{ deny: \[">"\] \}, subscribe: \{ allow: \["ferry.events.>", "_INBOX_api.>"\] \}/);
  });

  it('is the same text for the same users in any order', () => {
    expect(renderNatsConfig({ ...config, users: [...config.users].reverse() })).toBe(renderNatsConfig(config));
  });

  it('refuses a key that is no NKey user key (nothing can be smuggled into the file)', () => {
    expect(() => renderNatsConfig({ ...config, users: [{ identity: agentIdentity('h2'), publicKey: 'U" } ] } authorization { users: [' }] })).toThrow(/not an NKey/);
  });
});
