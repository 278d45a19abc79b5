import { z } from 'zod';
import { Name } from './ids.ts';
import { nextCursorField } from './paging.ts';

/**
 * API roles, least to most: each can do what the ones before it can.
 * - viewer: read (every GET but the audit log and workloads' console logs);
 * - operator: move and run things (migrate, cancel, maintenance, rebalance, plans, start/stop), read the audit log and console logs;
 * - admin: create and destroy workloads, remove and admit hosts, manage tokens.
 * Which route needs which role is declared once, in the API's operation table (services/api/src/openapi.ts).
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export const Role = z.enum(ROLES);
export type Role = z.infer<typeof Role>;

/** Whether a token with role `held` may use a route that needs `needed`. */
export const roleAllows = (held: Role, needed: Role): boolean => ROLES.indexOf(held) >= ROLES.indexOf(needed);

/** The token FERRY_API_TOKEN configures: always valid, always admin, never stored. */
export const BOOTSTRAP_TOKEN_NAME = 'bootstrap';

export const TokenName = Name.describe('token name');

/** What Redis holds for a named token: never the token, only its SHA-256 (hex). */
export const TokenRecord = z.object({
  name: TokenName,
  role: Role,
  /** SHA-256 of the token, hex */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: z.number().int().nonnegative(),
});
export type TokenRecord = z.infer<typeof TokenRecord>;

export const CreateTokenRequest = z.strictObject({ name: TokenName, role: Role });
export type CreateTokenRequest = z.infer<typeof CreateTokenRequest>;

export const TokenParams = z.strictObject({ name: TokenName });

/** A token as listed: never the token itself. */
export const TokenView = z.object({
  name: TokenName,
  role: Role,
  /** null for the bootstrap token (it comes from FERRY_API_TOKEN) */
  createdAt: z.number().int().nonnegative().nullable(),
  /** to within a minute; null when never used */
  lastUsedAt: z.number().int().nonnegative().nullable(),
  /** the bootstrap token: configured, not created; cannot be revoked through the API */
  builtIn: z.boolean(),
});
export type TokenView = z.infer<typeof TokenView>;

export const TokenListResponse = z.object({ tokens: z.array(TokenView), ...nextCursorField });
export type TokenListResponse = z.infer<typeof TokenListResponse>;

/** 201 answer to POST /v1/tokens: the only time the token is ever shown. */
export const TokenCreated = z.object({
  name: TokenName,
  role: Role,
  createdAt: z.number().int().nonnegative(),
  /** the bearer token; Ferry keeps only its hash, so store it now */
  token: z.string(),
});
export type TokenCreated = z.infer<typeof TokenCreated>;

export const TokenRevoked = z.object({ name: TokenName, revoked: z.literal(true) });
export type TokenRevoked = z.infer<typeof TokenRevoked>;

/** Who made a request: a token's name, or why there was none. */
export const ANONYMOUS = 'anonymous';
export const INVALID_TOKEN = 'invalid token';

/** What a route's path parameter names, when it names something. */
export const AUDIT_TARGETS = ['workload', 'host', 'migration', 'plan', 'token', 'job', 'join-token'] as const;
export type AuditTarget = (typeof AUDIT_TARGETS)[number];

/** One mutating request (POST, PUT, PATCH, DELETE), allowed or refused, and how it ended. */
export const AuditEntry = z.object({
  /** the Redis stream entry id: pass it as `before` for the page after this one */
  id: z.string(),
  at: z.number().int().nonnegative(),
  /** a token's name, `anonymous` (no token) or `invalid token` */
  who: z.string().max(100),
  /** the role the token holds; null without a valid token */
  role: Role.nullable(),
  method: z.string().max(10),
  /** the request path, without the query */
  path: z.string().max(500),
  /** the query string (without `?`), when there was one */
  query: z.string().max(500).nullable(),
  /** the route pattern, e.g. /v1/workloads/:id/migrate; null when no route matched */
  route: z.string().max(200).nullable(),
  /** the workload, host, migration, plan or token the request names, where it names one */
  target: z.object({ kind: z.enum(AUDIT_TARGETS), id: z.string().max(200) }).nullable(),
  /** the client's address as the API saw it */
  remote: z.string().max(100),
  /** the HTTP status answered */
  status: z.number().int(),
  /** the error code when refused or failed */
  error: z.string().max(40).nullable(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

/** Redis stream ids: `<ms>-<seq>`. */
export const AUDIT_ID_PATTERN = /^\d{1,20}-\d{1,20}$/;

export const AuditQuery = z.strictObject({
  /** newest first, at most this many (default 100) */
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /** only entries older than this id (the `next` of the previous page) */
  before: z.string().regex(AUDIT_ID_PATTERN, 'must be an audit entry id such as 1700000000000-0').optional(),
});
export type AuditQuery = z.infer<typeof AuditQuery>;

export const AuditResponse = z.object({
  entries: z.array(AuditEntry),
  /** pass as `before` for older entries; null when there are none */
  next: z.string().nullable(),
});
export type AuditResponse = z.infer<typeof AuditResponse>;
