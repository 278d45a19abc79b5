import { z } from 'zod';
import { HostId } from './ids.ts';
import { nextCursorField } from './paging.ts';

/**
 * Joining a host: an admin makes a short-lived one-time join token (`ferry-admin join-token`,
 * POST /v1/join-tokens); the new host runs `ferry-agent join <api url> <token>`, which makes its
 * own NKey and TLS key (neither ever leaves it) and sends their public halves with the token to
 * POST /v1/join. The control plane admits the host's NATS identity and signs its certificate.
 *
 * A token reads `<id>.<secret>.<ca pin>`: the id names it (listing, revoking, the audit log),
 * the secret (24 random bytes) proves it (Redis keeps its SHA-256 only), and the pin is the
 * SHA-256 of the cluster CA's certificate, so the joining host trusts the control plane it
 * reaches only if that holds the very CA the token was made by.
 */
export const JOIN_TOKEN_PATTERN = /^([0-9a-f]{12})\.([A-Za-z0-9_-]{32})\.([A-Za-z0-9_-]{43})$/;

export const JoinTokenId = z.string().regex(/^[0-9a-f]{12}$/, 'must be a join token id (12 hex digits)');

/** What Redis holds for a join token: never the secret, only its SHA-256 (hex). */
export const JoinTokenRecord = z.object({
  id: JoinTokenId,
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.number().int().nonnegative(),
  expiresAt: z.number().int().nonnegative(),
  /** the API token that made it */
  createdBy: z.string().max(100),
});
export type JoinTokenRecord = z.infer<typeof JoinTokenRecord>;

/** A join token's one use: who used it and when. */
export const JoinTokenUse = z.object({ at: z.number().int().nonnegative(), hostId: HostId, remote: z.string().max(100) });
export type JoinTokenUse = z.infer<typeof JoinTokenUse>;

export const JOIN_TOKEN_TTL = { minSeconds: 60, maxSeconds: 7 * 24 * 3600, defaultSeconds: 3600 } as const;

export const CreateJoinTokenRequest = z.strictObject({
  /** how long it may be used (default one hour, at most a week) */
  ttlSeconds: z.number().int().min(JOIN_TOKEN_TTL.minSeconds).max(JOIN_TOKEN_TTL.maxSeconds).default(JOIN_TOKEN_TTL.defaultSeconds),
});
export type CreateJoinTokenRequest = z.infer<typeof CreateJoinTokenRequest>;

/** 201 answer to POST /v1/join-tokens: the only time the token is shown. */
export const JoinTokenCreated = z.object({ id: JoinTokenId, token: z.string(), expiresAt: z.number().int() });
export type JoinTokenCreated = z.infer<typeof JoinTokenCreated>;

export const JoinTokenView = z.object({
  id: JoinTokenId,
  state: z.enum(['valid', 'used', 'expired']),
  createdAt: z.number().int(),
  expiresAt: z.number().int(),
  createdBy: z.string(),
  used: JoinTokenUse.nullable(),
});
export type JoinTokenView = z.infer<typeof JoinTokenView>;

export const JoinTokenListResponse = z.object({ joinTokens: z.array(JoinTokenView), ...nextCursorField });
export type JoinTokenListResponse = z.infer<typeof JoinTokenListResponse>;

export const JoinTokenParams = z.strictObject({ id: JoinTokenId });

export const JoinTokenRevoked = z.object({ id: JoinTokenId, revoked: z.literal(true) });
export type JoinTokenRevoked = z.infer<typeof JoinTokenRevoked>;

/** POST /v1/join: a new host asks to be admitted. */
export const JoinRequest = z.strictObject({
  token: z.string().regex(JOIN_TOKEN_PATTERN, 'must be a join token (<id>.<secret>.<ca pin>, from ferry-admin join-token)'),
  hostId: HostId,
  /** the host's NATS identity: its public NKey (the seed stays on the host) */
  publicKey: z.string().regex(/^U[A-Z2-7]{55}$/, 'must be an NKey user public key'),
  /** a PEM certificate signing request for the host's key (the key stays on the host) */
  csr: z.string().min(100).max(8000),
  /** the host's management address: put in its certificate */
  address: z.ipv4().optional(),
});
export type JoinRequest = z.infer<typeof JoinRequest>;

export const JoinResponse = z.object({
  hostId: HostId,
  /** the host's NATS identity name (agent-<host>) */
  identity: z.string(),
  /** where the agent reaches NATS */
  natsUrl: z.string(),
  /** the cluster CA certificate (PEM) */
  caPem: z.string(),
  /** the host's certificate (PEM), signed by the cluster CA: its NATS client certificate */
  certPem: z.string(),
});
export type JoinResponse = z.infer<typeof JoinResponse>;

export const ClusterCaResponse = z.object({ caPem: z.string(), pin: z.string() });
export type ClusterCaResponse = z.infer<typeof ClusterCaResponse>;
