import { describe, expect, it } from 'vitest';
import { nkeys } from 'nats';
import { agentIdentity } from '@ferry/protocol';
import { NATS_ROUTE_SUBJECT, renderNatsAuthorization, renderNatsServerConfig, type NatsServerConfig } from './nats-config.ts';
import { natsNodePaths } from './control-plane.ts';

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
    expect(text).toContain(`{ nkey: "${users[0]!.publicKey}", permissions: { publish: { allow: ["ferry.host.h1.capacity", "ferry.events.migrations.*.progress.h1", "ferry.console.h1.*.out"] }`);
    expect(text).toContain(
      'subscribe: { allow: ["ferry.agent.h1.>", "ferry.host.h1.lease", "ferry.usage.h1", "ferry.logs.h1", "ferry.exec.h1", "ferry.console.h1.open", "ferry.console.h1.*.in", "_INBOX_agent-h1.>"] }, allow_responses: { max: 1, expires: "30m" }',
    );
    expect(text).toMatch(
      /# api \(api\)\n.*publish: \{ allow: \["ferry.usage.\*", "ferry.logs.\*", "ferry.exec.\*", "ferry.console.\*.open", "ferry.console.\*.\*.in"\] \}, subscribe: \{ allow: \["ferry.events.>", "ferry.console.\*.\*.out", "_INBOX_api.>"\] \}/,
    );
  });

  it('is the same text for the same users in any order', () => {
    expect(renderNatsAuthorization([...users].reverse())).toBe(renderNatsAuthorization(users));
  });

  it('refuses a key that is no NKey user key (nothing can be smuggled into the file)', () => {
    expect(() => renderNatsAuthorization([{ identity: agentIdentity('h2'), publicKey: 'U" } ] } authorization { users: [' }])).toThrow(/not an NKey/);
  });

  describe('a node of a NATS cluster', () => {
    const base: NatsServerConfig = {
      host: '10.0.0.1',
      port: 4222,
      tls: { cert: '/s/nats-server.crt', key: '/s/nats-server.key', ca: '/s/ca.crt' },
      authorizationFile: '/s/nats-authorization.conf',
      pidFile: '/s/nats-1.pid',
      logFile: '/s/nats-1.log',
    };
    const node = (n: number, routes = ['10.0.0.2:6222', '10.0.0.3:6222']): NatsServerConfig => ({
      ...base,
      host: `10.0.0.${n}`,
      pidFile: `/s/nats-${n}.pid`,
      logFile: `/s/nats-${n}.log`,
      serverName: `nats-${n}`,
      cluster: { name: 'ferry', host: `10.0.0.${n}`, port: 6222, routes, tls: { cert: '/s/nats-route.crt', key: '/s/nats-route.key', ca: '/s/ca.crt' } },
    });

    it('routes over TLS with the cluster CA, and lets in only a route certificate (verify_and_map to CN=nats-route)', () => {
      const text = renderNatsServerConfig(node(1));
      expect(text).toContain('server_name: "nats-1"');
      expect(text).toContain(
        [
          'cluster {',
          '  name: "ferry"',
          '  listen: "10.0.0.1:6222"',
          '  routes: ["nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]',
          '  tls {',
          '    cert_file: "/s/nats-route.crt"',
          '    key_file: "/s/nats-route.key"',
          '    ca_file: "/s/ca.crt"',
          '    verify_and_map: true',
          '    timeout: 2',
          '  }',
          `  authorization { user: "${NATS_ROUTE_SUBJECT}", timeout: 2 }`,
          '}',
        ].join('\n'),
      );
      expect(NATS_ROUTE_SUBJECT).toBe('CN=nats-route');
      // no route password anywhere: the certificate is the route's credential
      expect(text).not.toMatch(/password|nats-route:\/\/[^"]*@/);
    });

    it("keeps the clients' side identical to a single server's: TLS verify, the one included authorization file", () => {
      const single = renderNatsServerConfig(base);
      const clustered = renderNatsServerConfig({ ...node(1), host: base.host, pidFile: base.pidFile, logFile: base.logFile });
      const clientSide = (text: string) =>
        text
          .split('\n')
          .filter((l) => !l.startsWith('server_name'))
          .join('\n')
          .replace(/cluster \{[\s\S]*?\n\}\n/, '');
      expect(clientSide(clustered)).toBe(clientSide(single));
      for (const n of [1, 2, 3]) expect(renderNatsServerConfig(node(n))).toContain('include "nats-authorization.conf"');
      expect(single).not.toContain('cluster {');
      expect(single).not.toContain('server_name');
    });

    it('gives each node its own pid file and log, and refuses names and addresses that could break the file', () => {
      expect(natsNodePaths('/s')).toEqual({ config: '/s/nats.conf', pid: '/s/nats.pid', log: '/s/nats.log' });
      expect(natsNodePaths('/s', 'nats-2')).toEqual({ config: '/s/nats-2.conf', pid: '/s/nats-2.pid', log: '/s/nats-2.log' });
      expect(() => natsNodePaths('/s', '../etc/x')).toThrow(/not a NATS node name/);
      expect(() => renderNatsServerConfig(node(1, ['10.0.0.2:6222"] }\nauthorization { users: [']))).toThrow(/not a host:port/);
      expect(() => renderNatsServerConfig({ ...node(1), serverName: 'a"b' })).toThrow(/not a NATS server name/);
      expect(() => renderNatsServerConfig({ ...node(1), cluster: { ...node(1).cluster!, name: 'x y' } })).toThrow(/not a NATS cluster name/);
    });
  });
});
