import { readFileSync, statSync } from 'node:fs';
import { connect, nkeyAuthenticator, type NatsConnection } from 'nats';
import type { Logger } from 'pino';
import { z } from 'zod';
import { NAME_PATTERN } from '@ferry/protocol';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const encodeJson = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));
export const decodeText = (data: Uint8Array): string => decoder.decode(data);

/**
 * How a service reaches NATS: always TLS (verified against the cluster CA) and always as its own
 * NKey identity. There is no anonymous or plain-text mode.
 */
export const NatsClientSettings = z.object({
  url: z.string().min(1),
  /** the identity's name: it names this connection's private inbox prefix (_INBOX_<name>) */
  identity: z.string().regex(NAME_PATTERN, 'must be 1-63 lowercase letters, digits or dashes'),
  /** file holding the identity's NKey seed (mode 0600, owned by the service's user) */
  seedFile: z.string().startsWith('/', 'must be an absolute path'),
  /** the cluster CA certificate that signed the NATS server's certificate */
  caFile: z.string().startsWith('/', 'must be an absolute path'),
  /** this identity's client certificate of the cluster CA, and its key (0600): NATS verifies both ends */
  certFile: z.string().startsWith('/', 'must be an absolute path'),
  keyFile: z.string().startsWith('/', 'must be an absolute path'),
});
export type NatsClientSettings = z.infer<typeof NatsClientSettings>;

/** Reads an NKey seed, refusing a file that other users could read (a seed is a password). */
export function readSeed(file: string): Uint8Array {
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) throw new Error(`${file} is readable by others (mode ${mode.toString(8)}): an NKey seed must be 0600`);
  const seed = readFileSync(file, 'utf8').trim();
  if (!/^SU[A-Z2-7]{50,}$/.test(seed)) throw new Error(`${file} holds no NKey user seed`);
  return encoder.encode(seed);
}

/** Connection options for an identity (also what tests and tools use to connect as one). */
export function natsConnectOptions(settings: NatsClientSettings) {
  const seed = readSeed(settings.seedFile);
  return {
    servers: settings.url.split(','),
    name: settings.identity,
    authenticator: nkeyAuthenticator(seed),
    tls: { caFile: settings.caFile, certFile: settings.certFile, keyFile: settings.keyFile },
    inboxPrefix: `_INBOX_${settings.identity}`,
  };
}

/** A NATS connection that reconnects forever and logs its status changes. */
export async function connectNats(settings: NatsClientSettings, log: Logger): Promise<NatsConnection> {
  const nc = await connect({
    ...natsConnectOptions(settings),
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: true,
  });
  log.info({ server: nc.getServer(), identity: settings.identity }, 'connected to NATS');
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'pingTimer') continue;
      log.info({ nats: status.type, data: String(status.data) }, 'NATS status');
    }
  })();
  return nc;
}

/** The NATS fields every service's config has (spread into its zod object), and their variables. */
export const NATS_CONFIG_FIELDS = {
  natsUrl: z.string().min(1).default('nats://127.0.0.1:4222'),
  /** this process's NATS identity; each service has its default (agent-<hostId>, scheduler, api) */
  natsIdentity: NatsClientSettings.shape.identity.optional(),
  /** the identity's NKey seed file (required: NATS refuses anonymous clients) */
  natsSeedFile: NatsClientSettings.shape.seedFile,
  /** the cluster CA's certificate (required: NATS speaks only TLS) */
  natsCaFile: NatsClientSettings.shape.caFile,
  /** the identity's client certificate and key (required: NATS verifies clients' certificates) */
  natsCertFile: NatsClientSettings.shape.certFile,
  natsKeyFile: NatsClientSettings.shape.keyFile,
};
export const NATS_CONFIG_ENV = {
  FERRY_NATS_URL: 'natsUrl',
  FERRY_NATS_IDENTITY: 'natsIdentity',
  FERRY_NATS_SEED_FILE: 'natsSeedFile',
  FERRY_NATS_CA_FILE: 'natsCaFile',
  FERRY_NATS_CERT_FILE: 'natsCertFile',
  FERRY_NATS_KEY_FILE: 'natsKeyFile',
};

export function natsSettingsOf(
  config: { natsUrl: string; natsIdentity?: string | undefined; natsSeedFile: string; natsCaFile: string; natsCertFile: string; natsKeyFile: string },
  defaultIdentity: string,
): NatsClientSettings {
  return {
    url: config.natsUrl,
    identity: config.natsIdentity ?? defaultIdentity,
    seedFile: config.natsSeedFile,
    caFile: config.natsCaFile,
    certFile: config.natsCertFile,
    keyFile: config.natsKeyFile,
  };
}
