import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { nkeys } from 'nats';
import { z } from 'zod';
import { ClusterCaResponse, HostId, JOIN_TOKEN_PATTERN, JoinResponse } from '@ferry/protocol';
import { answerMessage, requestJson } from '@ferry/runtime';
import { certificatePin, makeKeyAndRequest } from '@ferry/security';
import { AgentConfig } from './config.ts';

export const JoinOptions = z.object({
  /** the control plane's API, e.g. https://10.0.0.1:7443 (what ferry-admin join-token printed) */
  apiUrl: z.url({ protocol: /^https?$/, message: 'must be the API URL ferry-admin join-token printed (https://…)' }),
  token: z.string().regex(JOIN_TOKEN_PATTERN, 'must be the join token ferry-admin join-token printed'),
  /** this host's id in the cluster (default: its hostname) */
  hostId: HostId.optional(),
  /** this host's management address: where other agents reach it for transfers, and in its certificate */
  address: z.ipv4().optional(),
  /** the agent's config file: written (kept fields of an existing one, e.g. pools and networks) */
  configFile: z.string().startsWith('/').default('/etc/ferry/agent.json'),
  /** the host's NKey seed, key, certificate and the cluster CA (0700) */
  secretsDir: z.string().startsWith('/').default('/etc/ferry/agent'),
});
export type JoinOptions = z.input<typeof JoinOptions>;

export interface JoinResult {
  hostId: string;
  identity: string;
  configFile: string;
  natsUrl: string;
}

/** A hostname as a host id: lowercase, other characters as dashes (the operator can pass --host-id). */
export const hostIdFromHostname = (name = hostname()): string =>
  name
    .toLowerCase()
    .split('.')[0]!
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63) || 'host';

/**
 * Joins this host to a control plane with a one-time join token:
 * 1. makes the host's NATS NKey and TLS key here (0600, never sent anywhere);
 * 2. fetches the cluster CA and checks it against the pin in the token — a control plane that
 *    does not hold the CA the token was made by is not trusted with anything;
 * 3. sends the token, the public key and a certificate request over HTTPS verified against that
 *    CA; the control plane admits the identity and signs the certificate;
 * 4. writes the certificate, the CA and the agent's config file (an existing one keeps its
 *    other fields: pools, networks…), checked against the agent's config schema first.
 * Nothing is written outside the secrets directory until the control plane has said yes, and a
 * refused join leaves nothing behind.
 */
export async function joinCluster(input: JoinOptions): Promise<JoinResult> {
  const o = JoinOptions.parse(input);
  const hostId = o.hostId ?? HostId.parse(hostIdFromHostname());
  const pin = JOIN_TOKEN_PATTERN.exec(o.token)![3]!;
  const apiUrl = o.apiUrl.replace(/\/$/, '');
  const seedFile = join(o.secretsDir, 'nats.nk');
  if (existsSync(seedFile)) {
    throw new Error(`this host has joined already (${seedFile} exists): to join again, remove the host from the cluster (ferry hosts remove ${hostId}) and delete ${o.secretsDir}`);
  }
  const existing = existsSync(o.configFile) ? (JSON.parse(readFileSync(o.configFile, 'utf8')) as Record<string, unknown>) : {};

  const ca = await requestJson({ method: 'GET', url: `${apiUrl}/v1/cluster/ca`, insecureSkipVerify: true });
  if (ca.status !== 200) throw new Error(`${apiUrl} did not give its cluster CA: ${answerMessage(ca)}`);
  const caPem = ClusterCaResponse.parse(ca.body).caPem;
  if (certificatePin(caPem) !== `sha256:${pin}`) {
    throw new Error(`${apiUrl} holds another CA than the one this token was made by: not joining (wrong URL, or someone in between)`);
  }

  const staging = `${o.secretsDir}.joining`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  try {
    const pair = nkeys.createUser();
    writeFileSync(join(staging, 'nats.nk'), `${new TextDecoder().decode(pair.getSeed())}\n`, { mode: 0o600 });
    const { csrPem } = await makeKeyAndRequest(staging, 'host');
    const answer = await requestJson({
      method: 'POST',
      url: `${apiUrl}/v1/join`,
      ca: caPem,
      body: { token: o.token, hostId, publicKey: pair.getPublicKey(), csr: csrPem, ...(o.address ? { address: o.address } : {}) },
    });
    if (answer.status !== 201) throw new Error(`the control plane refused to admit ${hostId}: ${answerMessage(answer)}`);
    const joined = JoinResponse.parse(answer.body);
    writeFileSync(join(staging, 'host.crt'), joined.certPem, { mode: 0o644 });
    writeFileSync(join(staging, 'ca.crt'), joined.caPem, { mode: 0o644 });
    const config = {
      ...existing,
      hostId,
      ...(o.address ? { address: o.address } : {}),
      natsUrl: joined.natsUrl,
      natsIdentity: joined.identity,
      natsSeedFile: seedFile,
      natsCaFile: join(o.secretsDir, 'ca.crt'),
      natsCertFile: join(o.secretsDir, 'host.crt'),
      natsKeyFile: join(o.secretsDir, 'host.key'),
    };
    const checked = AgentConfig.safeParse(config);
    if (!checked.success) throw new Error(`the agent's config would not be valid: ${checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    rmSync(o.secretsDir, { recursive: true, force: true });
    renameSync(staging, o.secretsDir);
    chmodSync(o.secretsDir, 0o700);
    mkdirSync(dirname(o.configFile), { recursive: true });
    writeFileSync(`${o.configFile}.tmp`, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o644 });
    renameSync(`${o.configFile}.tmp`, o.configFile);
    return { hostId, identity: joined.identity, configFile: o.configFile, natsUrl: joined.natsUrl };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
