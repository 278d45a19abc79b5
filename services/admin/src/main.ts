/**
 * ferry-admin: sets up a control plane and lets hosts join it (docs/install.md).
 *
 *   ferry-admin init --address IP [--api-port 7443] [--nats-port 4222] [--redis-port 6379]
 *                    [--control-dir DIR] [--redis-dir DIR] [--config-dir DIR] [--user ferry]
 *                    [--nats-cluster IP:PORT,IP:PORT,IP:PORT [--nats-route-port 6222]]
 *                    [--redis-sentinel IP,IP,IP [--sentinel-port 26379] [--sentinel-down-after 5000]]
 *   ferry-admin join-token [--ttl 1h] [--quiet] [--config /etc/ferry/control.json]
 *   ferry-admin join-token --list | --revoke ID
 */
import { parseArgs } from 'node:util';
import { createJoinToken, listJoinTokens, parseDuration, revokeJoinToken } from './join-token.ts';
import { initControlPlane } from './init.ts';

const USAGE = `usage:
  ferry-admin init --address IP [--api-port 7443] [--nats-port 4222] [--redis-port 6379]
                   [--control-dir /var/lib/ferry/control] [--redis-dir /var/lib/ferry/redis]
                   [--config-dir /etc/ferry] [--user ferry]
                   [--nats-cluster IP:PORT,IP:PORT,IP:PORT [--nats-route-port 6222]]
                   [--redis-sentinel IP,IP,IP [--sentinel-port 26379] [--sentinel-down-after MS]]
      sets up this machine's control plane: CA, certificates, NATS identities, NATS and Redis
      configuration, the first admin token; with --nats-cluster, NATS as a cluster of those
      nodes (this machine's among them; the others' files to copy: docs/install.md); with
      --redis-sentinel, Redis as a primary (here) with a replica and a Sentinel on each of the
      three machines (the others' files to copy: docs/install.md)
  ferry-admin join-token [--ttl 1h] [--quiet] [--config /etc/ferry/control.json]
      prints the command a new host runs to join (a one-time token, valid --ttl)
  ferry-admin join-token --list | --revoke ID`;

class UsageError extends Error {}

async function init(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      address: { type: 'string' },
      'api-port': { type: 'string' },
      'nats-port': { type: 'string' },
      'redis-port': { type: 'string' },
      'control-dir': { type: 'string' },
      'redis-dir': { type: 'string' },
      'config-dir': { type: 'string' },
      user: { type: 'string' },
      'nats-cluster': { type: 'string' },
      'nats-route-port': { type: 'string' },
      'redis-sentinel': { type: 'string' },
      'sentinel-port': { type: 'string' },
      'sentinel-down-after': { type: 'string' },
    },
    strict: true,
  });
  if (!values.address) throw new UsageError('init needs --address: the IPv4 address hosts reach this control plane on');
  const result = await initControlPlane({
    address: values.address,
    apiPort: values['api-port'],
    natsPort: values['nats-port'],
    redisPort: values['redis-port'],
    controlDir: values['control-dir'],
    redisDir: values['redis-dir'],
    configDir: values['config-dir'],
    user: values.user,
    natsCluster: values['nats-cluster'],
    natsRoutePort: values['nats-route-port'],
    redisSentinel: values['redis-sentinel'],
    sentinelPort: values['sentinel-port'],
    sentinelDownAfterMs: values['sentinel-down-after'],
  } as Parameters<typeof initControlPlane>[0]);
  console.log(`Ferry control plane initialised.
  API:   ${result.apiUrl}   (HTTPS, certificate of the cluster CA)
  NATS:  ${result.natsUrl}   (TLS both ways, one NKey identity per process${result.natsUrl.includes(',') ? "; a cluster: copy the other nodes' files, docs/install.md" : ''})
  Redis: ${result.redisSentinels ? `primary here, a replica and a Sentinel on each machine; Sentinels ${result.redisSentinels} (copy the other machines' files, docs/install.md)` : 'one server, loopback only'}
  wrote: ${result.files.join(', ')}

The bootstrap admin token (shown this once; kept 0600 in the control directory as api-token):
  ${result.adminToken}

Next:
  systemctl enable --now ferry-nats ferry-redis ${result.redisSentinels ? 'ferry-redis-sentinel ' : ''}ferry-scheduler ferry-api
  ferry context set prod --url ${result.apiUrl} --token <the token above>
  ferry-admin join-token          # then run what it prints on each new host`);
}

async function joinToken(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { ttl: { type: 'string' }, quiet: { type: 'boolean', short: 'q' }, config: { type: 'string' }, list: { type: 'boolean' }, revoke: { type: 'string' } },
    strict: true,
  });
  const config = values.config ?? '/etc/ferry/control.json';
  if (values.list) {
    const { joinTokens } = await listJoinTokens(config);
    if (joinTokens.length === 0) console.log('no join tokens');
    for (const t of joinTokens) {
      const used = t.used ? ` by ${t.used.hostId} at ${new Date(t.used.at).toISOString()}` : '';
      console.log(`${t.id}  ${t.state}${used}  expires ${new Date(t.expiresAt).toISOString()}  made by ${t.createdBy}`);
    }
    return;
  }
  if (values.revoke) {
    await revokeJoinToken(config, values.revoke);
    console.log(`join token ${values.revoke} revoked`);
    return;
  }
  const ttlSeconds = parseDuration(values.ttl ?? '1h');
  const { command, created } = await createJoinToken(config, ttlSeconds);
  if (values.quiet) {
    console.log(created.token);
    return;
  }
  console.log(`Run this on the new host (as root), once, before ${new Date(created.expiresAt).toISOString()}:\n  ${command}`);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === 'init') return init(rest);
  if (command === 'join-token') return joinToken(rest);
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return;
  }
  throw new UsageError(`unknown command ${command}`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err);
  console.error(`ferry-admin: ${message}`);
  if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) console.error(USAGE);
  process.exit(err instanceof UsageError ? 2 : 1);
});
