import type { FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import {
  agentIdentity,
  CreateJoinTokenRequest,
  JoinRequest,
  JoinTokenParams,
  type ClusterCaResponse,
  type JoinResponse,
  type JoinTokenCreated,
  type JoinTokenListResponse,
  type JoinTokenRevoked,
  TokenListQuery,
  pageOfList,
} from '@ferry/protocol';
import { certificatePin, type ControlPlaneSecrets } from '@ferry/security';
import type { ClusterStore, JoinTokenStore } from '@ferry/store';
import { ApiError, parseRequest } from '../errors.ts';

/** What admitting hosts needs: the control plane's secrets, and the NATS address agents are told. */
export interface HostAdmission {
  secrets: ControlPlaneSecrets;
  natsUrl: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

function noAdmission(): never {
  throw new ApiError('UNAVAILABLE', 'this API does not admit hosts: it runs without the control plane directory (FERRY_CONTROL_DIR)');
}

/**
 * Hosts joining with a one-time token (docs/install.md):
 * - `POST /v1/join-tokens` (admin) makes one, shown once; `GET` lists them (never the secret),
 *   `DELETE /v1/join-tokens/:id` revokes one;
 * - `GET /v1/cluster/ca` (open) is the cluster CA certificate a joining host checks against the
 *   pin in its token before it sends anything;
 * - `POST /v1/join` (open: the token is the credential) admits the host's NATS identity (its
 *   public NKey; nats-server reloads) and signs its certificate request. A token is used once:
 *   unknown, expired and used tokens are refused with 401 and change nothing. A host id that
 *   already has an identity is refused (409) before the token is used.
 */
export function joinRoutes(app: FastifyInstance, store: ClusterStore, tokens: JoinTokenStore, admission: HostAdmission | null): void {
  const caPem = () => (admission ? readFileSync(admission.secrets.ca.cert, 'utf8') : noAdmission());

  app.post('/v1/join-tokens', async (request, reply) => {
    const { ttlSeconds } = parseRequest(CreateJoinTokenRequest, request.body ?? {}, 'body');
    const created = await tokens.create(certificatePin(caPem()), ttlSeconds * 1000, request.principal?.who ?? 'unknown');
    request.log.info({ joinToken: created.record.id, expiresAt: created.record.expiresAt, by: request.principal?.who }, 'join token created');
    const answer: JoinTokenCreated = { id: created.record.id, token: created.token, expiresAt: created.record.expiresAt };
    return reply.status(201).send(answer);
  });

  /** In id order, paged like every list (a bounded list, read whole from Redis). */
  app.get('/v1/join-tokens', async (request): Promise<JoinTokenListResponse> => {
    const query = parseRequest(TokenListQuery, request.query, 'query');
    const page = await pageOfList(await tokens.list(), (t) => t.id, { limit: query.limit, after: query.cursor });
    return { joinTokens: page.items, nextCursor: page.nextCursor };
  });

  app.delete('/v1/join-tokens/:id', async (request): Promise<JoinTokenRevoked> => {
    const { id } = parseRequest(JoinTokenParams, request.params, 'params');
    if (!(await tokens.revoke(id))) throw new ApiError('NOT_FOUND', `no join token ${id} (ferry-admin join-token --list shows them)`, { id });
    return { id, revoked: true };
  });

  app.get('/v1/cluster/ca', async (): Promise<ClusterCaResponse> => {
    const pem = caPem();
    return { caPem: pem, pin: certificatePin(pem) };
  });

  app.post('/v1/join', async (request, reply) => {
    const body = parseRequest(JoinRequest, request.body, 'body');
    if (!admission) noAdmission();
    const identity = agentIdentity(body.hostId);
    if (admission.secrets.has(identity.name)) {
      throw new ApiError('CONFLICT', `host ${body.hostId} has a NATS identity already: to join it again, remove it first (ferry hosts remove ${body.hostId})`, { hostId: body.hostId });
    }
    const used = await tokens.use(body.token, body.hostId, request.ip ?? '');
    request.principal = { who: used.id ? `join token ${used.id}` : 'invalid join token', role: null };
    if (!used.ok) {
      const message =
        used.refusal === 'unknown'
          ? 'unknown join token (not one of this cluster, or revoked)'
          : used.refusal === 'expired'
            ? `join token ${used.id} has expired: make another (ferry-admin join-token)`
            : `join token ${used.id} was used already${used.used ? ` (by host ${used.used.hostId} at ${iso(used.used.at)})` : ''}: make another (ferry-admin join-token)`;
      throw new ApiError('UNAUTHORIZED', message, { refusal: used.refusal });
    }
    let certPem: string;
    try {
      certPem = await admission.secrets.changeIdentities(() => admission.secrets.admitRemote(identity, body.publicKey, body.csr, { ips: body.address ? [body.address] : [], dns: [] }));
    } catch (err) {
      await tokens.release(used.id); // nothing was admitted: the token may be used again
      const message = err instanceof Error ? err.message : String(err);
      // another join of the same host id won the race (both passed the check above)
      if (/admitted already/.test(message)) throw new ApiError('CONFLICT', `cannot admit host ${body.hostId}: ${message}`, { hostId: body.hostId });
      if (/certificate signing request/.test(message)) throw new ApiError('BAD_REQUEST', `cannot admit host ${body.hostId}: ${message}`, { hostId: body.hostId });
      throw err;
    }
    const removed = await store.removedHosts.get(body.hostId);
    if (removed) {
      await store.removedHosts.remove(body.hostId);
      await store.addHistory(body.hostId, { at: Date.now(), kind: 'admitted', message: `joined again with join token ${used.id}: its reports count from now on`, data: removed });
    }
    request.log.warn({ hostId: body.hostId, joinToken: used.id, remote: request.ip }, 'host joined: NATS identity admitted');
    const answer: JoinResponse = { hostId: body.hostId, identity: identity.name, natsUrl: admission.natsUrl, caPem: caPem(), certPem };
    return reply.status(201).send(answer);
  });
}
